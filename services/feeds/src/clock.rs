//! The clock the day's close follows: the system's, or one a test sets.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }

    /// A clock that stands at `start` until moved with [`ManualClock::set`].
    pub fn manual(start: DateTime<Utc>) -> (Self, ManualClock) {
        let at = Arc::new(Mutex::new(start));
        let read = at.clone();
        (Self(Arc::new(move || *read.lock().expect("clock lock poisoned"))), ManualClock(at))
    }
}

/// The hand of a manual clock.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock poisoned") = at;
    }
}
