//! The versioned price table (TOML) and the one function that turns a `usage` block into money.
//! Money is integer nano-dollars: cost paid plus savings always equals the standard cost.

use std::collections::BTreeMap;
use std::path::Path;

use app::api::JobType;
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

/// Prices in micro-dollars per million tokens, so that per-token costs stay exact integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: i64,
    pub output: i64,
    pub cache_write: i64,
    pub cache_read: i64,
}

#[derive(Clone, Debug)]
pub struct PriceTable {
    pub version: String,
    pub batch_discount_percent: i64,
    pub default_model: String,
    pub job_models: BTreeMap<String, String>,
    pub models: BTreeMap<String, ModelPrice>,
}

/// Token counts as Anthropic reports them in a result's `usage`.
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
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.unwrap_or(0))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// What the batch costs: the standard cost less the batch discount.
    pub paid_nanos: i64,
    /// What the standard Messages API would have cost.
    pub standard_nanos: i64,
}

impl Cost {
    pub fn savings_nanos(&self) -> i64 {
        self.standard_nanos - self.paid_nanos
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
    input: f64,
    output: f64,
    cache_write: f64,
    cache_read: f64,
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
            let price = ModelPrice {
                input: micros(p.input, &format!("{name}.input"))?,
                output: micros(p.output, &format!("{name}.output"))?,
                cache_write: micros(p.cache_write, &format!("{name}.cache_write"))?,
                cache_read: micros(p.cache_read, &format!("{name}.cache_read"))?,
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
                            usd(p.cache_write),
                            usd(p.cache_read),
                        ],
                    )
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

    /// The most a rendered request may cost at batch prices: its prompt at one token per byte
    /// and its whole `max_tokens` (0 for a model without a price). What budgets and previews
    /// count: an upper bound whatever the text (emoji and CJK cost several tokens a character).
    pub fn bound_nanos(&self, model: &str, rendered: &crate::templates::RenderedRequest) -> i64 {
        let usage = Usage {
            input_tokens: rendered.prompt_bound_tokens,
            output_tokens: rendered.max_tokens,
            ..Usage::default()
        };
        self.cost(model, &usage).map_or(0, |c| c.paid_nanos)
    }

    /// The most a job may cost, rendered as a flush would render it now.
    pub fn job_bound_nanos(&self, job_type: JobType, payload_json: &str) -> i64 {
        let model = self.model_for(job_type);
        self.bound_nanos(
            model,
            &crate::templates::render(job_type, payload_json, model),
        )
    }

    /// Cost of one result's usage on `model`; `None` for a model without a price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Cost> {
        let p = self.models.get(model)?;
        // micro-dollars per MTok × tokens / 1000 = nano-dollars; i128 keeps it exact.
        let micro_mtok = i128::from(usage.input_tokens) * i128::from(p.input)
            + i128::from(usage.output_tokens) * i128::from(p.output)
            + i128::from(usage.cache_creation_input_tokens) * i128::from(p.cache_write)
            + i128::from(usage.cache_read_input_tokens) * i128::from(p.cache_read);
        let standard = div_round(micro_mtok, 1000);
        let paid = div_round(
            standard * i128::from(100 - self.batch_discount_percent),
            100,
        );
        Some(Cost {
            paid_nanos: clamp(paid),
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
                standard_nanos: 4_500_000_000
            }
        );
        assert_eq!(cost.savings_nanos(), 2_250_000_000);
        let cached = Usage {
            cache_creation_input_tokens: 1000,
            cache_read_input_tokens: 1000,
            ..Usage::default()
        };
        // 1000 × $3.75/MTok + 1000 × $0.30/MTok = $0.00405.
        assert_eq!(
            table
                .cost("claude-sonnet-4-5", &cached)
                .unwrap()
                .standard_nanos,
            4_050_000
        );
        assert_eq!(table.cost("no-such-model", &usage), None);
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
