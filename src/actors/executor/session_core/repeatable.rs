//! Distributed-session repeatable read: pins and where a pinned version is served from.

use super::{error, fingerprint, LocalView, Read, ReadStep, SessionCore, SessionError, Wait};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use crate::protocol::ErrorCode;

impl SessionCore {
    /// Repeatable read at the home: `values` were read (and pinned) there for `keys`.
    pub fn pinned_here(&mut self, keys: &[Key], values: &[Option<LatticeValue>]) {
        for (k, v) in keys.iter().zip(values) {
            self.meta
                .pinned
                .entry(k.clone())
                .or_insert_with(|| fingerprint(v.as_ref()));
        }
    }

    /// Repeatable read away from the home: serve what `view` holds in the pinned version
    /// (and pinned absences); fetch the rest from the home cache.
    pub fn read_pinned(&mut self, keys: Vec<Key>, view: &impl LocalView) -> (Read, ReadStep) {
        let mut values = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let local = match self.meta.pinned.get(k) {
                Some(0) => Some(None),
                Some(&fp) => view.held_version(k, fp).map(Some),
                None => None,
            };
            if local.is_none() {
                missing.push(i);
            }
            values.push(local.flatten());
        }
        let mut read = Read {
            keys,
            values,
            clocks: Vec::new(),
            wait: Wait::Pinned(Vec::new()),
        };
        if missing.is_empty() {
            self.pinned_here(&read.keys, &read.values);
            let values = std::mem::take(&mut read.values);
            return (read, ReadStep::Serve(values));
        }
        let wanted = missing.iter().map(|&i| read.keys[i].clone()).collect();
        read.wait = Wait::Pinned(missing);
        (read, ReadStep::FetchPinned(wanted))
    }

    pub(super) fn fetched_pins(
        &mut self,
        read: &mut Read,
        missing: Vec<usize>,
        answer: Vec<Option<LatticeValue>>,
    ) -> Result<ReadStep, SessionError> {
        if answer.len() != missing.len() {
            return Err(error(
                ErrorCode::InternalError,
                "the home cache answered another number of keys".into(),
            ));
        }
        for (i, v) in missing.into_iter().zip(answer) {
            if let Some(&fp) = self.meta.pinned.get(&read.keys[i]) {
                if fingerprint(v.as_ref()) != fp {
                    return Err(error(
                        ErrorCode::SessionExpired,
                        format!(
                            "the version of `{}` this call pinned is gone (the session expired)",
                            read.keys[i]
                        ),
                    ));
                }
            }
            read.values[i] = v;
        }
        self.pinned_here(&read.keys, &read.values);
        Ok(ReadStep::Serve(std::mem::take(&mut read.values)))
    }
}
