//! What is in flight: the deliverer's HTTP client (which dials only allowed addresses) and
//! each owner's places, so one owner's slow receiver never holds up another's deliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::address::{Destinations, Lookup};
use super::send;

/// Deliveries of one owner in flight at once.
pub const PER_OWNER: usize = 4;
/// Deliveries in flight at once, all owners together.
const AT_ONCE: usize = 64;

/// The deliverer: its HTTP client (which dials only allowed addresses) and what is in flight.
pub struct Deliveries {
    pub(super) client: reqwest::Client,
    pub(super) destinations: Destinations,
    in_flight: Mutex<HashMap<String, usize>>,
}

impl Deliveries {
    pub fn new(destinations: Destinations, lookup: Arc<dyn Lookup>) -> Self {
        Self {
            client: send::client(destinations.clone(), lookup),
            destinations,
            in_flight: Mutex::default(),
        }
    }

    /// Owners with every place taken, and the places left in all.
    pub(super) fn busy(&self) -> (Vec<String>, usize) {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let busy = in_flight
            .iter()
            .filter(|(_, n)| **n >= PER_OWNER)
            .map(|(owner, _)| owner.clone())
            .collect();
        (busy, AT_ONCE.saturating_sub(in_flight.values().sum()))
    }

    /// Takes a place for `owner`, if one is free, until the returned guard is dropped.
    pub(super) fn take(self: &Arc<Self>, owner: &str) -> Option<Place> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = in_flight.values().sum();
        let mine = in_flight.entry(owner.to_string()).or_default();
        if *mine >= PER_OWNER || total >= AT_ONCE {
            return None;
        }
        *mine += 1;
        Some(Place {
            deliveries: self.clone(),
            owner: owner.to_string(),
        })
    }

    /// The addresses a callback may not name, judged without a lookup (for enqueue).
    pub fn refuses_url(&self, url: &str) -> Option<String> {
        self.destinations.refuses_url(url)
    }
}

/// A delivery's place in flight; given back when dropped, even if the delivery panics.
pub(super) struct Place {
    deliveries: Arc<Deliveries>,
    owner: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut in_flight = self
            .deliveries
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = in_flight.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::SystemLookup;

    #[test]
    fn an_owner_takes_at_most_their_places_and_gets_them_back() {
        let deliveries = Arc::new(Deliveries::new(
            Destinations::default(),
            Arc::new(SystemLookup),
        ));
        let mine: Vec<Place> = (0..PER_OWNER)
            .map(|_| deliveries.take("slow").expect("a place"))
            .collect();
        assert!(
            deliveries.take("slow").is_none(),
            "no more than {PER_OWNER}"
        );
        assert_eq!(deliveries.busy().0, vec!["slow".to_string()]);
        let other = deliveries.take("fast");
        assert!(other.is_some(), "another owner still gets a place");
        drop(mine);
        assert!(deliveries.busy().0.is_empty());
        assert!(deliveries.take("slow").is_some(), "places come back");
    }
}
