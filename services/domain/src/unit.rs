//! Units of the reporting network and their textual keys.
//!
//! A key reads `level:path`: `province`, `city:Wuhan`, `school:S001`,
//! `department:S001/D01`, `grade:S001/D01/2019`, `class:S001/D01/2019/C03`,
//! `dorm:S001/B1-203`. Dorms hang off the school, not off a class: a dorm can hold
//! several classes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::event::Placement;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    Province,
    City,
    School,
    Department,
    Grade,
    Class,
    Dorm,
}

impl Level {
    pub const ALL: [Level; 7] =
        [Self::Province, Self::City, Self::School, Self::Department, Self::Grade, Self::Class, Self::Dorm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::City => "city",
            Self::School => "school",
            Self::Department => "department",
            Self::Grade => "grade",
            Self::Class => "class",
            Self::Dorm => "dorm",
        }
    }
}

impl FromStr for Level {
    type Err = UnitKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL.into_iter().find(|level| level.as_str() == s).ok_or_else(|| UnitKeyError::UnknownLevel(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitKeyError {
    #[error("unknown level {0:?}, expected one of province, city, school, department, grade, class, dorm")]
    UnknownLevel(String),
    #[error("{level} key needs {expected} path segments separated by '/', got {got:?}")]
    Segments { level: &'static str, expected: usize, got: String },
}

/// A unit's display names; empty while it has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitNames {
    pub zh: String,
    pub en: String,
}

impl UnitNames {
    pub fn is_empty(&self) -> bool {
        self.zh.is_empty() && self.en.is_empty()
    }

    /// "中文 English", or whichever there is.
    pub fn label(&self) -> String {
        match (self.zh.is_empty(), self.en.is_empty()) {
            (false, false) => format!("{} {}", self.zh, self.en),
            (false, true) => self.zh.clone(),
            _ => self.en.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitKey {
    pub level: Level,
    /// Empty for the province; otherwise the codes from the school down, joined by '/'.
    pub path: String,
}

impl UnitKey {
    pub fn province() -> Self {
        Self { level: Level::Province, path: String::new() }
    }

    pub fn city(city: &str) -> Self {
        Self { level: Level::City, path: city.to_owned() }
    }

    pub fn school(school: &str) -> Self {
        Self { level: Level::School, path: school.to_owned() }
    }

    /// The units a person placed in `placement` at `school` of `city` counts in, from the
    /// province down. Levels the placement leaves empty are skipped.
    /// A city or a department not known (a person not registered) is left out, never a key
    /// with an empty code.
    pub fn for_person(city: &str, school: &str, placement: &Placement) -> Vec<UnitKey> {
        let mut units = vec![Self::province()];
        if !city.is_empty() {
            units.push(Self::city(city));
        }
        units.push(Self::school(school));
        if placement.department.is_empty() {
            return units;
        }
        let department = format!("{school}/{}", placement.department);
        if !placement.grade.is_empty() {
            let grade = format!("{department}/{}", placement.grade);
            if !placement.class.is_empty() {
                let class = format!("{grade}/{}", placement.class);
                units.push(Self { level: Level::Class, path: class });
            }
            units.push(Self { level: Level::Grade, path: grade });
        }
        units.push(Self { level: Level::Department, path: department });
        if !placement.dorm.is_empty() {
            units.push(Self { level: Level::Dorm, path: format!("{school}/{}", placement.dorm) });
        }
        units
    }

    /// The unit directly above this one in the five levels; a school's parent is its
    /// city, which the key alone does not know, so schools and cities answer `None`.
    pub fn parent_within_school(&self) -> Option<UnitKey> {
        let (head, _) = self.path.rsplit_once('/')?;
        let level = match self.level {
            Level::Department | Level::Dorm => Level::School,
            Level::Grade => Level::Department,
            Level::Class => Level::Grade,
            _ => return None,
        };
        Some(UnitKey { level, path: head.to_owned() })
    }

    /// The unit directly above this one; `city` is the city of the school it belongs to.
    pub fn parent(&self, city: &str) -> Option<UnitKey> {
        match self.level {
            Level::Province => None,
            Level::City => Some(Self::province()),
            Level::School => Some(Self::city(city)),
            _ => self.parent_within_school(),
        }
    }

    /// Whether `self` lies under `ancestor` (or is it), judged by the path.
    pub fn is_within(&self, ancestor: &UnitKey) -> bool {
        match ancestor.level {
            Level::Province => true,
            Level::City => false,
            _ => {
                self.path == ancestor.path
                    || self.path.starts_with(&format!("{}/", ancestor.path)) && self.level > ancestor.level
            }
        }
    }
}

impl fmt::Display for UnitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.level == Level::Province {
            f.write_str("province")
        } else {
            write!(f, "{}:{}", self.level.as_str(), self.path)
        }
    }
}

impl FromStr for UnitKey {
    type Err = UnitKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "province" {
            return Ok(Self::province());
        }
        let (level, path) = s.split_once(':').unwrap_or((s, ""));
        let level: Level = level.parse()?;
        let expected = match level {
            Level::Province => 0,
            Level::City | Level::School => 1,
            Level::Department | Level::Dorm => 2,
            Level::Grade => 3,
            Level::Class => 4,
        };
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() != expected || segments.iter().any(|s| s.is_empty()) {
            return Err(UnitKeyError::Segments { level: level.as_str(), expected, got: path.to_owned() });
        }
        Ok(Self { level, path: path.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_text() {
        for text in [
            "province",
            "city:Wuhan",
            "school:S1",
            "department:S1/D1",
            "grade:S1/D1/G1",
            "class:S1/D1/G1/C1",
            "dorm:S1/B2",
        ] {
            let key: UnitKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
        }
    }

    #[test]
    fn malformed_keys_are_refused_with_the_reason() {
        let err = "class:S1/D1".parse::<UnitKey>().unwrap_err();
        assert_eq!(err.to_string(), "class key needs 4 path segments separated by '/', got \"S1/D1\"");
        assert!("ward:x".parse::<UnitKey>().is_err());
    }

    #[test]
    fn a_student_counts_in_seven_units_and_staff_in_fewer() {
        let student = Placement { department: "D1".into(), grade: "G1".into(), class: "C1".into(), dorm: "B2".into() };
        let units: Vec<String> = UnitKey::for_person("Wuhan", "S1", &student).iter().map(ToString::to_string).collect();
        assert_eq!(
            units,
            [
                "province",
                "city:Wuhan",
                "school:S1",
                "class:S1/D1/G1/C1",
                "grade:S1/D1/G1",
                "department:S1/D1",
                "dorm:S1/B2"
            ]
        );
        let staff = Placement { department: "D1".into(), ..Placement::default() };
        assert_eq!(UnitKey::for_person("Wuhan", "S1", &staff).len(), 4);
    }

    #[test]
    fn parents_and_ancestry_follow_the_path() {
        let class: UnitKey = "class:S1/D1/G1/C1".parse().unwrap();
        assert_eq!(class.parent_within_school().unwrap().to_string(), "grade:S1/D1/G1");
        assert!(class.is_within(&"school:S1".parse().unwrap()));
        assert!(!class.is_within(&"school:S10".parse().unwrap()));
        assert!(class.is_within(&UnitKey::province()));
    }
}
