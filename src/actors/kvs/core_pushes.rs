//! Subscriptions to keys, and the pushes of changed values owed to subscribers.

use super::ShardCore;
use crate::ids::Key;
use crate::lattice::LatticeValue;

impl<S: Ord + Clone, P: Ord + Clone> ShardCore<S, P> {
    /// `sub` wants the new merged value of each of `keys` whenever it changes.
    pub fn subscribe(&mut self, sub: S, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            self.subscribers.entry(k).or_default().insert(sub.clone());
        }
    }

    /// `sub` no longer wants updates of `keys`.
    pub fn unsubscribe(&mut self, sub: &S, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            if let Some(set) = self.subscribers.get_mut(&k) {
                set.remove(sub);
                if set.is_empty() {
                    self.subscribers.remove(&k);
                }
            }
        }
    }

    /// Forget a subscriber entirely (it left the cluster).
    pub fn drop_subscriber(&mut self, sub: &S) {
        self.subscribers.retain(|_, set| {
            set.remove(sub);
            !set.is_empty()
        });
        self.pending_pushes.remove(sub);
    }

    /// How many (key, subscriber) pairs are registered.
    pub fn subscription_count(&self) -> usize {
        self.subscribers.values().map(|s| s.len()).sum()
    }

    /// Updates owed to subscribers since the last call, one batch per subscriber.
    pub fn take_pushes(&mut self) -> Vec<(S, Vec<(Key, LatticeValue)>)> {
        let pending = std::mem::take(&mut self.pending_pushes);
        pending
            .into_iter()
            .map(|(sub, keys)| {
                let batch = keys
                    .into_iter()
                    .filter_map(|k| self.store.get(&k).map(|s| (k, s.value.clone())))
                    .collect();
                (sub, batch)
            })
            .collect()
    }

    /// A push to `sub` could not be queued: owe it these keys again.
    pub fn requeue_push(&mut self, sub: S, keys: impl IntoIterator<Item = Key>) {
        if !self.subscribers.values().any(|set| set.contains(&sub)) {
            return;
        }
        self.pending_pushes.entry(sub).or_default().extend(keys);
    }

    /// Number of subscribers owed a push.
    pub fn pending_push_count(&self) -> usize {
        self.pending_pushes.len()
    }
}
