//! The offices that receive reports: the province office receives every school, each
//! city's disease-control office its own. Which office receives what is configuration.

use std::collections::BTreeSet;

use domain::inspection::InspectionUnit;
use domain::{Level, UnitKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    /// Names the feed (and its Kafka topic `feed.<id>`).
    pub id: String,
    pub name: String,
    /// Cities whose schools it receives; `*` for every city (and the province summary).
    pub cities: Vec<String>,
    /// Levels it receives; every level if empty.
    pub levels: Vec<Level>,
}

impl Office {
    pub fn province() -> Self {
        Self { id: "province".into(), name: "Provincial office".into(), cities: vec!["*".into()], levels: Vec::new() }
    }

    pub fn for_city(city: &str) -> Self {
        Self {
            id: format!("cdc-{city}"),
            name: format!("Disease-control office of {city}"),
            cities: vec![city.to_owned()],
            levels: Vec::new(),
        }
    }

    fn all_cities(&self) -> bool {
        self.cities.iter().any(|c| c == "*")
    }

    /// Whether the office oversees schools of `city`.
    pub fn oversees(&self, city: &str) -> bool {
        self.all_cities() || self.cities.iter().any(|c| c == city)
    }

    /// Whether the office receives the report of `unit`, which lies in `city`.
    pub fn receives(&self, unit: &UnitKey, city: &str) -> bool {
        if !self.levels.is_empty() && !self.levels.contains(&unit.level) {
            return false;
        }
        match unit.level {
            Level::Province => self.all_cities(),
            Level::City => self.oversees(&unit.path),
            _ => self.oversees(city),
        }
    }
}

impl Office {
    /// Whether the office receives the inspection report of `unit`, which lies in `city`:
    /// the province's with every city, a city's and its halls' with that city. Levels
    /// name the schools' network and do not apply.
    pub fn receives_inspections(&self, unit: &InspectionUnit, city: &str) -> bool {
        match unit {
            InspectionUnit::Province => self.all_cities(),
            _ => self.oversees(city),
        }
    }
}

/// The configured offices, plus one per city of the roster when `city_offices` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offices {
    pub listed: Vec<Office>,
    pub city_offices: bool,
}

impl Default for Offices {
    fn default() -> Self {
        Self { listed: vec![Office::province()], city_offices: true }
    }
}

impl Offices {
    /// Every office, given the cities the roster holds now.
    pub fn resolve(&self, cities: &BTreeSet<String>) -> Vec<Office> {
        let mut out = self.listed.clone();
        if self.city_offices {
            for city in cities {
                let office = Office::for_city(city);
                if !out.iter().any(|o| o.id == office.id) {
                    out.push(office);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_city_office_receives_its_own_schools_only() {
        let wuhan = Office::for_city("Wuhan");
        assert!(wuhan.receives(&UnitKey::school("S001"), "Wuhan"));
        assert!(wuhan.receives(&UnitKey::city("Wuhan"), "Wuhan"));
        assert!(!wuhan.receives(&UnitKey::school("S002"), "Xiangyang"));
        assert!(!wuhan.receives(&UnitKey::city("Xiangyang"), "Xiangyang"));
        assert!(!wuhan.receives(&UnitKey::province(), ""));
        let province = Office::province();
        assert!(province.receives(&UnitKey::school("S002"), "Xiangyang"));
        assert!(province.receives(&UnitKey::province(), ""));
    }

    #[test]
    fn levels_narrow_what_an_office_receives() {
        let office = Office { levels: vec![Level::School, Level::City], ..Office::for_city("Wuhan") };
        assert!(office.receives(&UnitKey::school("S001"), "Wuhan"));
        assert!(!office.receives(&"class:S001/D1/2019/C1".parse().unwrap(), "Wuhan"));
    }

    #[test]
    fn city_offices_follow_the_roster() {
        let cities = BTreeSet::from(["Wuhan".to_owned(), "Xiangyang".to_owned()]);
        let ids: Vec<String> = Offices::default().resolve(&cities).into_iter().map(|o| o.id).collect();
        assert_eq!(ids, ["province", "cdc-Wuhan", "cdc-Xiangyang"]);
        let none = Offices { listed: vec![Office::province()], city_offices: false };
        assert_eq!(none.resolve(&cities).len(), 1);
    }
}
