//! What a caller may do: post for which schools, read which units, see persons or not.
//! The services ask an [`Access`] before they answer; who holds which is the server's
//! business (tokens, certificates).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::unit::{Level, UnitKey};

/// A caller's rights, as their credential grants them.
#[derive(Debug, Clone)]
pub struct Access {
    /// Who: the token's name (`"anyone"` when access is not checked).
    pub name: String,
    /// Schools (or halls, enterprises) it may post events for; `"*"` for all.
    pub post: Vec<String>,
    /// Units it may read, with everything under them.
    pub read: Vec<UnitKey>,
    /// Whether it may see person-level data: who is under observation, alerts naming a
    /// person, exports of persons.
    pub persons: bool,
    /// Whether it may issue and revoke tokens and read the audit log.
    pub admin: bool,
    /// Set when the credential is revoked: a stream still open ends.
    revoked: Arc<AtomicBool>,
    /// Streams open now under this credential, shared by every copy of it.
    streams: Arc<AtomicUsize>,
    /// At most this many at once.
    pub max_streams: usize,
}

/// An open stream counted against its credential; closing it (dropping) frees the slot.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Access {
    pub fn new(name: String, post: Vec<String>, read: Vec<UnitKey>, persons: bool, admin: bool) -> Self {
        Self {
            name,
            post,
            read,
            persons,
            admin,
            revoked: Arc::default(),
            streams: Arc::default(),
            max_streams: usize::MAX,
        }
    }

    /// Everything, for a server that does not check access (loopback only).
    pub fn everything() -> Self {
        Self::new("anyone".into(), vec!["*".into()], vec![UnitKey::province()], true, true)
    }

    pub fn may_post(&self, school: &str) -> bool {
        self.post.iter().any(|s| s == "*" || s == school)
    }

    /// Whether `unit` lies in the read scope; `city_of` gives a school's city, which the
    /// key of a unit in a school does not hold.
    pub fn may_read(&self, unit: &UnitKey, city_of: impl Fn(&str) -> Option<String>) -> bool {
        let school = match unit.level {
            Level::Province | Level::City => None,
            _ => unit.path.split('/').next(),
        };
        let mut city = None;
        self.read.iter().any(|scope| match scope.level {
            Level::Province => true,
            Level::City => match unit.level {
                Level::Province => false,
                Level::City => unit.path == scope.path,
                _ => city.get_or_insert_with(|| school.and_then(&city_of)).as_deref() == Some(scope.path.as_str()),
            },
            _ => unit.is_within(scope),
        })
    }

    /// Whether the read scope covers the province (the whole of it, every city).
    pub fn reads_province(&self) -> bool {
        self.read.iter().any(|s| s.level == Level::Province)
    }

    /// Whether the read scope covers the whole of `city`.
    pub fn reads_city(&self, city: &str) -> bool {
        self.may_read(&UnitKey::city(city), |_| None)
    }

    /// A slot for one more open stream, or why not: the credential holds its most.
    pub fn open_stream(&self) -> Result<StreamSlot, String> {
        if self.streams.fetch_add(1, Ordering::SeqCst) >= self.max_streams {
            self.streams.fetch_sub(1, Ordering::SeqCst);
            return Err(format!(
                "token {} holds {} open streams, its most; close one first",
                self.name, self.max_streams
            ));
        }
        Ok(StreamSlot(self.streams.clone()))
    }

    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::Relaxed);
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

/// Where the services note each person-level read (who, what, when), for an operator
/// to review.
pub trait AuditLog: Send + Sync {
    fn record(&self, access: &Access, call: &str, unit: &str, detail: &str);
}

/// For a server that does not check access: nothing to note.
pub struct NoAudit;

impl AuditLog for NoAudit {
    fn record(&self, _: &Access, _: &str, _: &str, _: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(text: &str) -> UnitKey {
        text.parse().unwrap()
    }

    fn reading(scope: &[&str]) -> Access {
        Access::new("t".into(), vec![], scope.iter().map(|s| unit(s)).collect(), false, false)
    }

    /// S1 and S2 are in Guangzhou, S3 in Foshan.
    fn city_of(school: &str) -> Option<String> {
        match school {
            "S1" | "S2" => Some("Guangzhou".into()),
            "S3" => Some("Foshan".into()),
            _ => None,
        }
    }

    #[test]
    fn a_city_scope_reads_its_city_and_every_unit_of_its_schools_and_nothing_else() {
        let office = reading(&["city:Guangzhou"]);
        for allowed in ["city:Guangzhou", "school:S1", "class:S2/D1/G1/C1", "dorm:S1/R1"] {
            assert!(office.may_read(&unit(allowed), city_of), "{allowed}");
        }
        for refused in ["province", "city:Foshan", "school:S3", "dorm:S3/R1", "school:S9"] {
            assert!(!office.may_read(&unit(refused), city_of), "{refused}");
        }
        assert!(office.reads_city("Guangzhou") && !office.reads_city("Foshan") && !office.reads_province());
    }

    #[test]
    fn a_school_scope_reads_down_not_up_or_across() {
        let school = reading(&["school:S1"]);
        assert!(school.may_read(&unit("school:S1"), city_of));
        assert!(school.may_read(&unit("grade:S1/D1/G1"), city_of));
        for refused in ["province", "city:Guangzhou", "school:S2", "school:S10"] {
            assert!(!school.may_read(&unit(refused), city_of), "{refused}");
        }
        let class = reading(&["class:S1/D1/G1/C1"]);
        assert!(!class.may_read(&unit("grade:S1/D1/G1"), city_of));
        assert!(!class.may_read(&unit("class:S1/D1/G1/C10"), city_of));
    }

    #[test]
    fn the_province_reads_all_and_posting_is_by_school() {
        assert!(reading(&["province"]).may_read(&unit("dorm:S3/R1"), city_of));
        let source = Access::new("s".into(), vec!["S1".into()], vec![], false, false);
        assert!(source.may_post("S1") && !source.may_post("S2") && !source.may_post("*"));
        assert!(Access::everything().may_post("S2"));
        let revoked = source.clone();
        source.revoke();
        assert!(revoked.is_revoked(), "every copy sees the revocation");
    }

    #[test]
    fn a_credential_holds_at_most_its_streams_across_its_copies() {
        let mut one = Access::new("t".into(), vec![], vec![], false, false);
        one.max_streams = 2;
        let two = one.clone();
        let (a, b) = (one.open_stream().unwrap(), two.open_stream().unwrap());
        assert!(one.open_stream().unwrap_err().contains("holds 2 open streams"));
        drop(a);
        let _c = two.open_stream().expect("a slot freed");
        drop(b);
    }
}
