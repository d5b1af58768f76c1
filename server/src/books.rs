//! The books as operators scrape them: the maintained totals and the open batches, read
//! when `/metrics` is asked, written out with the counters (`metrics`).

use crate::context::Ctx;
use crate::error::Result;
use crate::metrics::{Books, render};
use crate::store::Visibility;

/// The Prometheus text of this instance's counters and the books now.
pub async fn scrape(ctx: &Ctx) -> Result<String> {
    let store = ctx.store();
    let books = Books {
        totals: store.totals(&Visibility::All).await?,
        open_batches: store.count_open_batches().await?,
        leader: ctx.is_leader(),
    };
    Ok(render(&books))
}
