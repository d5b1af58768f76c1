//! Jobs rendered as a batch sends them: each on its job type's model, with the shared context
//! it names (each context's text read once per batch) and the cache marking its model allows.

use std::collections::HashMap;
use std::sync::Arc;

use crate::context::Ctx;
use crate::error::Result;
use crate::store::QueuedJob;
use crate::templates::{self, RenderedRequest, SharedContext};

#[derive(Default)]
pub(super) struct Renderer {
    contexts: HashMap<String, SharedContext>,
}

impl Renderer {
    /// Reads the texts of the contexts these jobs name that are not read yet.
    pub async fn load(&mut self, ctx: &Ctx, jobs: &[QueuedJob]) -> Result<()> {
        let mut missing: Vec<String> = jobs
            .iter()
            .filter_map(|j| j.context_id.clone())
            .filter(|id| !self.contexts.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for (id, name, text) in ctx.store().context_texts(&missing).await? {
            self.contexts.insert(
                id.clone(),
                SharedContext {
                    id,
                    name,
                    text: Arc::from(text),
                },
            );
        }
        Ok(())
    }

    /// The job's model and request; `None` when the context it names is gone (deleted after
    /// the job was retried): it cannot be sent as it was asked.
    pub fn render(&self, ctx: &Ctx, job: &QueuedJob) -> Option<(String, RenderedRequest)> {
        let context = match &job.context_id {
            Some(id) => Some(self.contexts.get(id)?),
            None => None,
        };
        let model = ctx.prices.model_for(job.job_type).to_string();
        let plan = ctx.prices.cache_plan(&model, ctx.config.batch.cache_ttl);
        let rendered = templates::render(job.job_type, &job.payload, &model, context, &plan);
        Some((model, rendered))
    }
}
