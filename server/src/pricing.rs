//! The versioned price table (TOML) and the one function that turns a `usage` block into money.
//! Money is integer nano-dollars: cost paid plus savings always equals the standard cost.

use std::collections::BTreeMap;
use std::path::Path;

use app::api::{JobType, ProviderName};
use serde::Deserialize;

/// The table shipped with the code, used when no file is configured or found.
pub const BUILT_IN: &str = include_str!("../../config/prices.toml");

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read the price table {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the price table is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("the price table is not valid: {0}")]
    Invalid(String),
}

/// Prices in micro-dollars per million tokens, so that per-token costs stay exact integers,
/// on the standard Messages API (the batch discount applies to all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPrice {
    /// Who serves the model; a job type routed to it is sent there.
    pub provider: ProviderName,
    pub input: i64,
    pub output: i64,
    /// Writing a prefix to the cache for 5 minutes, and for an hour.
    pub cache_write_5m: i64,
    pub cache_write_1h: i64,
    pub cache_read: i64,
    /// The shortest prefix the model caches; a `cache_control` on a shorter one does nothing.
    pub min_cache_tokens: i64,
}

#[derive(Clone, Debug)]
pub struct PriceTable {
    pub version: String,
    pub batch_discount_percent: i64,
    pub default_model: String,
    pub job_models: BTreeMap<String, String>,
    pub models: BTreeMap<String, ModelPrice>,
}

/// Token counts as Anthropic reports them in a result's `usage`: `input_tokens` are the
/// prompt's tokens neither read from nor written to the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: i64,
    #[serde(default)]
    pub output_tokens: i64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_creation_input_tokens: i64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_read_input_tokens: i64,
    /// The cache writes by time to live; absent from older answers.
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct CacheCreation {
    #[serde(default, deserialize_with = "null_as_zero")]
    pub ephemeral_5m_input_tokens: i64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub ephemeral_1h_input_tokens: i64,
}

impl Usage {
    /// Cache writes for 5 minutes and for an hour. Without the split, every write is a
    /// 5-minute one (the default time to live); a split that does not add up to the total is
    /// read as its 1-hour part, the rest at 5 minutes, so no written token goes unbilled.
    pub fn cache_writes(&self) -> (i64, i64) {
        let total = self.cache_creation_input_tokens.max(0);
        let hour = self
            .cache_creation
            .map_or(0, |c| c.ephemeral_1h_input_tokens.max(0))
            .min(total);
        (total - hour, hour)
    }

    /// Every token of the prompt, however it was billed.
    pub fn prompt_tokens(&self) -> i64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.unwrap_or(0))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// What the batch costs: cache reads and writes at their prices, less the batch discount.
    pub paid_nanos: i64,
    /// The same requests in a batch without caching: every prompt token at the input price,
    /// less the batch discount.
    pub uncached_nanos: i64,
    /// The same requests on the standard Messages API without caching.
    pub standard_nanos: i64,
}

impl Cost {
    pub fn savings_nanos(&self) -> i64 {
        self.standard_nanos - self.paid_nanos
    }

    /// What the batch discount saved.
    pub fn saved_by_batching_nanos(&self) -> i64 {
        self.standard_nanos - self.uncached_nanos
    }

    /// What caching saved on top of it (negative when writes cost more than reads saved).
    pub fn saved_by_caching_nanos(&self) -> i64 {
        self.uncached_nanos - self.paid_nanos
    }
}

#[derive(Deserialize)]
struct RawTable {
    version: String,
    batch_discount_percent: i64,
    default_model: String,
    #[serde(default)]
    job_models: BTreeMap<String, String>,
    models: BTreeMap<String, RawPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    #[serde(default = "default_provider")]
    provider: String,
    input: f64,
    output: f64,
    /// Older tables name the 5-minute write `cache_write`.
    #[serde(alias = "cache_write")]
    cache_write_5m: f64,
    /// Anthropic's 1-hour write is twice the input price; older tables leave it out.
    cache_write_1h: Option<f64>,
    cache_read: f64,
    /// Anthropic's documented minimum for Sonnet and Opus when a table leaves it out.
    #[serde(default = "default_min_cache_tokens")]
    min_cache_tokens: i64,
}

fn default_provider() -> String {
    ProviderName::Anthropic.as_str().into()
}

fn default_min_cache_tokens() -> i64 {
    1024
}

impl PriceTable {
    /// Reads the table at `path`, or the built-in one when `path` does not exist.
    pub fn load(path: &Path) -> Result<Self, PriceError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::built_in(),
            Err(source) => Err(PriceError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn built_in() -> Result<Self, PriceError> {
        Self::parse(BUILT_IN)
    }

    pub fn parse(text: &str) -> Result<Self, PriceError> {
        let raw: RawTable = toml::from_str(text)?;
        if !(0..=100).contains(&raw.batch_discount_percent) {
            return Err(PriceError::Invalid(
                "batch_discount_percent must be 0 to 100".into(),
            ));
        }
        let micros = |usd: f64, what: &str| {
            if usd.is_finite() && usd >= 0.0 {
                Ok((usd * 1e6).round() as i64)
            } else {
                Err(PriceError::Invalid(format!(
                    "{what} must be a price of 0 or more"
                )))
            }
        };
        let mut models = BTreeMap::new();
        for (name, p) in raw.models {
            let provider = ProviderName::parse(&p.provider).ok_or_else(|| {
                PriceError::Invalid(format!(
                    "{name}.provider: {} is not a provider (anthropic, openai)",
                    p.provider
                ))
            })?;
            let price = ModelPrice {
                provider,
                input: micros(p.input, &format!("{name}.input"))?,
                output: micros(p.output, &format!("{name}.output"))?,
                cache_write_5m: micros(p.cache_write_5m, &format!("{name}.cache_write_5m"))?,
                cache_write_1h: micros(
                    p.cache_write_1h.unwrap_or(p.input * 2.0),
                    &format!("{name}.cache_write_1h"),
                )?,
                cache_read: micros(p.cache_read, &format!("{name}.cache_read"))?,
                min_cache_tokens: p.min_cache_tokens.max(0),
            };
            models.insert(name, price);
        }
        let table = PriceTable {
            version: raw.version,
            batch_discount_percent: raw.batch_discount_percent,
            default_model: raw.default_model,
            job_models: raw.job_models,
            models,
        };
        for (job_type, model) in table
            .job_models
            .iter()
            .chain([(&"default_model".to_string(), &table.default_model)])
        {
            if !table.models.contains_key(model) {
                return Err(PriceError::Invalid(format!(
                    "{job_type} uses {model}, which has no price"
                )));
            }
        }
        for job_type in table.job_models.keys() {
            if JobType::parse(job_type).is_none() {
                return Err(PriceError::Invalid(format!(
                    "unknown job type {job_type} in [job_models]"
                )));
            }
        }
        Ok(table)
    }

    /// The table with `job_type=model` routes replacing its [job_models] entries.
    pub fn with_routes(mut self, routes: &[String]) -> Result<Self, PriceError> {
        for route in routes.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
            let Some((job_type, model)) = route.split_once('=') else {
                return Err(PriceError::Invalid(format!(
                    "route {route:?}: expected job_type=model"
                )));
            };
            let (job_type, model) = (job_type.trim(), model.trim());
            if JobType::parse(job_type).is_none() {
                return Err(PriceError::Invalid(format!(
                    "route {route:?}: unknown job type {job_type}"
                )));
            }
            if !self.models.contains_key(model) {
                return Err(PriceError::Invalid(format!(
                    "route {route:?}: {model} has no price in the table"
                )));
            }
            self.job_models.insert(job_type.into(), model.into());
        }
        Ok(self)
    }

    /// The table for people: USD per million tokens.
    pub fn view(&self) -> app::api::PriceView {
        let usd = |micros: i64| micros as f64 / 1e6;
        app::api::PriceView {
            version: self.version.clone(),
            batch_discount_percent: self.batch_discount_percent,
            default_model: self.default_model.clone(),
            job_models: self
                .job_models
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            models: self
                .models
                .iter()
                .map(|(name, p)| {
                    (
                        name.clone(),
                        [
                            usd(p.input),
                            usd(p.output),
                            usd(p.cache_write_5m),
                            usd(p.cache_read),
                        ],
                    )
                })
                .collect(),
            caching: self
                .models
                .iter()
                .map(|(name, p)| app::api::ModelCacheView {
                    model: name.clone(),
                    provider: Some(p.provider),
                    write_5m_usd_per_mtok: usd(p.cache_write_5m),
                    write_1h_usd_per_mtok: usd(p.cache_write_1h),
                    read_usd_per_mtok: usd(p.cache_read),
                    min_cache_tokens: p.min_cache_tokens,
                })
                .collect(),
            routes: JobType::ALL
                .iter()
                .map(|&job_type| {
                    let (provider, model) = self.route(job_type);
                    app::api::RouteView {
                        job_type,
                        provider,
                        model: model.to_string(),
                    }
                })
                .collect(),
        }
    }

    /// The model a job type runs on.
    pub fn model_for(&self, job_type: JobType) -> &str {
        self.job_models
            .get(job_type.as_str())
            .unwrap_or(&self.default_model)
    }

    /// Who serves a model (Anthropic for a model without a price).
    pub fn provider_of(&self, model: &str) -> ProviderName {
        self.models
            .get(model)
            .map_or(ProviderName::Anthropic, |p| p.provider)
    }

    /// A job type's route: the provider and the model its jobs are sent to.
    pub fn route(&self, job_type: JobType) -> (ProviderName, &str) {
        let model = self.model_for(job_type);
        (self.provider_of(model), model)
    }

    /// The job types routed to `provider`.
    pub fn job_types_on(&self, provider: ProviderName) -> Vec<JobType> {
        JobType::ALL
            .iter()
            .copied()
            .filter(|&t| self.route(t).0 == provider)
            .collect()
    }

    /// The most a rendered request may cost at batch prices: its prompt at one token per byte
    /// (a byte-level tokenizer never makes more), the part of it marked for caching written at
    /// the 1-hour price (the dearest way a prompt token can be billed), and its whole
    /// `max_tokens` (0 for a model without a price). What budgets and previews count.
    pub fn bound_nanos(&self, model: &str, rendered: &crate::templates::RenderedRequest) -> i64 {
        let Some(p) = self.models.get(model) else {
            return 0;
        };
        let cached = rendered
            .cached_bound_tokens
            .min(rendered.prompt_bound_tokens);
        let standard = div_round(
            i128::from(rendered.prompt_bound_tokens - cached) * i128::from(p.input)
                + i128::from(cached) * i128::from(p.cache_write_1h.max(p.input))
                + i128::from(rendered.max_tokens) * i128::from(p.output),
            1000,
        );
        clamp(self.discounted(standard))
    }

    /// What a flush preview shows of one request at its bound tokens (whole prompt, whole
    /// `max_tokens`): its marked prefix written for `ttl` when it is the first of its prefix
    /// in the batch, read otherwise. `paid_nanos` is the cost with every cache read
    /// happening, `uncached_nanos` the cost without caching.
    pub fn preview_cost(
        &self,
        model: &str,
        rendered: &crate::templates::RenderedRequest,
        writes_prefix: bool,
        ttl: crate::templates::CacheTtl,
    ) -> Option<Cost> {
        let prefix = rendered
            .cached_bound_tokens
            .min(rendered.prompt_bound_tokens);
        let mut usage = Usage {
            input_tokens: rendered.prompt_bound_tokens - prefix,
            output_tokens: rendered.max_tokens,
            ..Usage::default()
        };
        if writes_prefix {
            let (five_minutes, hour) = match ttl {
                crate::templates::CacheTtl::FiveMinutes => (prefix, 0),
                crate::templates::CacheTtl::Hour => (0, prefix),
            };
            usage.cache_creation_input_tokens = prefix;
            usage.cache_creation = Some(CacheCreation {
                ephemeral_5m_input_tokens: five_minutes,
                ephemeral_1h_input_tokens: hour,
            });
        } else {
            usage.cache_read_input_tokens = prefix;
        }
        self.cost(model, &usage)
    }

    /// The most a job may cost, rendered as a flush would render it now.
    pub fn job_bound_nanos(
        &self,
        job_type: JobType,
        payload_json: &str,
        context: Option<&crate::templates::SharedContext>,
    ) -> i64 {
        let model = self.model_for(job_type);
        let rendered = crate::templates::render(
            job_type,
            payload_json,
            model,
            context,
            &self.cache_plan(model, crate::templates::CacheTtl::Hour),
        );
        self.bound_nanos(model, &rendered)
    }

    /// How requests on `model` are marked for caching, writing for `ttl`.
    pub fn cache_plan(
        &self,
        model: &str,
        ttl: crate::templates::CacheTtl,
    ) -> crate::templates::CachePlan {
        crate::templates::CachePlan {
            ttl,
            min_tokens: self
                .models
                .get(model)
                .map_or(i64::MAX, |p| p.min_cache_tokens),
        }
    }

    /// Each model's minimum cacheable prefix.
    pub fn cache_minimums(&self) -> impl Iterator<Item = (String, i64)> + '_ {
        self.models
            .iter()
            .map(|(name, p)| (name.clone(), p.min_cache_tokens))
    }

    /// A price after the batch discount.
    fn discounted(&self, standard: i128) -> i128 {
        div_round(
            standard * i128::from(100 - self.batch_discount_percent),
            100,
        )
    }

    /// Cost of one result's usage on `model`; `None` for a model without a price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Cost> {
        let p = self.models.get(model)?;
        let (write_5m, write_1h) = usage.cache_writes();
        let output = i128::from(usage.output_tokens) * i128::from(p.output);
        // micro-dollars per MTok × tokens / 1000 = nano-dollars; i128 keeps it exact.
        let billed = i128::from(usage.input_tokens) * i128::from(p.input)
            + i128::from(write_5m) * i128::from(p.cache_write_5m)
            + i128::from(write_1h) * i128::from(p.cache_write_1h)
            + i128::from(usage.cache_read_input_tokens) * i128::from(p.cache_read)
            + output;
        let uncached = i128::from(usage.prompt_tokens()) * i128::from(p.input) + output;
        let standard = div_round(uncached, 1000);
        Some(Cost {
            paid_nanos: clamp(self.discounted(div_round(billed, 1000))),
            uncached_nanos: clamp(self.discounted(standard)),
            standard_nanos: clamp(standard),
        })
    }
}

fn div_round(n: i128, d: i128) -> i128 {
    (n + d / 2) / d
}

fn clamp(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_loads_with_every_default_model_priced() {
        let table = PriceTable::built_in().unwrap();
        assert_eq!(table.batch_discount_percent, 50);
        for job_type in JobType::ALL {
            assert!(
                table.models.contains_key(table.model_for(*job_type)),
                "{job_type}"
            );
        }
        assert_eq!(
            table.model_for(JobType::SentimentAnalysis),
            "claude-haiku-4-5"
        );
    }

    #[test]
    fn cost_is_exact_and_halved() {
        let table = PriceTable::built_in().unwrap();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            ..Usage::default()
        };
        // Sonnet: $3 in + $1.50 out = $4.50 standard, $2.25 in a batch.
        let cost = table.cost("claude-sonnet-4-5", &usage).unwrap();
        assert_eq!(
            cost,
            Cost {
                paid_nanos: 2_250_000_000,
                uncached_nanos: 2_250_000_000,
                standard_nanos: 4_500_000_000
            }
        );
        assert_eq!(cost.savings_nanos(), 2_250_000_000);
        assert_eq!(cost.saved_by_caching_nanos(), 0);
        assert_eq!(table.cost("no-such-model", &usage), None);
    }

    /// A job with cache reads and 5-minute and 1-hour writes, by hand: Sonnet at $3/MTok
    /// input, $3.75 a 5-minute write, $6 a 1-hour write, $0.30 a read, $15 output; the batch
    /// halves each.
    #[test]
    fn cache_reads_and_writes_of_both_lives_cost_exactly_their_prices() {
        let table = PriceTable::built_in().unwrap();
        let usage: Usage = serde_json::from_value(serde_json::json!({
            "input_tokens": 1_234,
            "output_tokens": 567,
            "cache_creation_input_tokens": 30_000,
            "cache_read_input_tokens": 250_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 20_000}
        }))
        .unwrap();
        assert_eq!(usage.cache_writes(), (10_000, 20_000));
        assert_eq!(usage.prompt_tokens(), 281_234);
        let cost = table.cost("claude-sonnet-4-5", &usage).unwrap();
        // Billed at standard prices: 1,234 × 3 + 10,000 × 3.75 + 20,000 × 6 + 250,000 × 0.30
        // + 567 × 15 = 3,702 + 37,500 + 120,000 + 75,000 + 8,505 = 244,707 µ$·token/MTok,
        // i.e. $0.244707; the batch halves it: $0.1223535.
        assert_eq!(cost.paid_nanos, 122_353_500);
        // Without caching, every prompt token at $3: 281,234 × 3 + 8,505 = 852,207 → $0.852207
        // standard, $0.4261035 in a batch.
        assert_eq!(cost.standard_nanos, 852_207_000);
        assert_eq!(cost.uncached_nanos, 426_103_500);
        assert_eq!(cost.saved_by_batching_nanos(), 426_103_500);
        assert_eq!(cost.saved_by_caching_nanos(), 303_750_000);
        assert_eq!(
            cost.saved_by_batching_nanos() + cost.saved_by_caching_nanos(),
            cost.savings_nanos()
        );
        // Without the split, every write is a 5-minute one.
        let unsplit = Usage {
            cache_creation: None,
            ..usage
        };
        assert_eq!(unsplit.cache_writes(), (30_000, 0));
        // 3,702 + 30,000 × 3.75 + 75,000 + 8,505 = 199,707 → $0.0998535 in a batch.
        assert_eq!(
            table
                .cost("claude-sonnet-4-5", &unsplit)
                .unwrap()
                .paid_nanos,
            99_853_500
        );
    }

    #[test]
    fn usage_accepts_null_cache_fields() {
        let usage: Usage = serde_json::from_str(
            r#"{"input_tokens": 5, "output_tokens": 7, "cache_creation_input_tokens": null}"#,
        )
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 5,
                output_tokens: 7,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn invalid_tables_are_refused() {
        let base = BUILT_IN.replace(
            "batch_discount_percent = 50",
            "batch_discount_percent = 150",
        );
        assert!(matches!(
            PriceTable::parse(&base),
            Err(PriceError::Invalid(_))
        ));
        let unpriced = BUILT_IN.replace(
            "default_model = \"claude-sonnet-4-5\"",
            "default_model = \"gpt\"",
        );
        assert!(matches!(
            PriceTable::parse(&unpriced),
            Err(PriceError::Invalid(_))
        ));
        assert!(matches!(
            PriceTable::parse("version = 1"),
            Err(PriceError::Parse(_))
        ));
    }
}
