//! How many live log follows (server-sent events) each user holds open: a
//! user who opens tabs without end, or a script that never closes its
//! streams, cannot tie up the database with polls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Live follows one user may hold at once.
pub const PER_USER: usize = 4;

/// Open follows per user id.
#[derive(Debug, Default)]
pub struct Follows {
    open: Mutex<HashMap<i64, usize>>,
}

/// One open follow; dropping it (the stream ended or the browser left)
/// gives the slot back.
#[derive(Debug)]
pub struct FollowSlot {
    follows: Arc<Follows>,
    user_id: i64,
}

impl Follows {
    /// A slot for `user_id`, unless it already holds [`PER_USER`].
    pub fn open(self: &Arc<Self>, user_id: i64) -> Option<FollowSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(user_id).or_default();
        if *n >= PER_USER {
            return None;
        }
        *n += 1;
        Some(FollowSlot {
            follows: self.clone(),
            user_id,
        })
    }
}

impl Drop for FollowSlot {
    fn drop(&mut self) {
        let mut open = self.follows.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_four_and_a_closed_one_frees_its_slot() {
        let f = Arc::new(Follows::default());
        let mut slots: Vec<FollowSlot> =
            (0..PER_USER).map(|_| f.open(1).expect("a slot")).collect();
        assert!(f.open(1).is_none(), "a fifth");
        assert!(f.open(2).is_some(), "another user is not held back");
        slots.pop();
        assert!(f.open(1).is_some(), "a slot given back");
    }
}
