//! The province's cities: the reference list that registrations and inspections must name
//! from, so that a typo or a made-up city never becomes a unit and a disease-control office.

use serde::{Deserialize, Serialize};

/// A city of the province: the name used in unit keys and events, and its Chinese name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct City {
    pub name: String,
    pub chinese: String,
}

/// The configured cities of the province.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cities(Vec<City>);

/// The 21 prefecture-level cities of Guangdong, the seed's province.
const GUANGDONG: [(&str, &str); 21] = [
    ("Guangzhou", "广州市"),
    ("Shenzhen", "深圳市"),
    ("Zhuhai", "珠海市"),
    ("Shantou", "汕头市"),
    ("Foshan", "佛山市"),
    ("Shaoguan", "韶关市"),
    ("Heyuan", "河源市"),
    ("Meizhou", "梅州市"),
    ("Huizhou", "惠州市"),
    ("Shanwei", "汕尾市"),
    ("Dongguan", "东莞市"),
    ("Zhongshan", "中山市"),
    ("Jiangmen", "江门市"),
    ("Yangjiang", "阳江市"),
    ("Zhanjiang", "湛江市"),
    ("Maoming", "茂名市"),
    ("Zhaoqing", "肇庆市"),
    ("Qingyuan", "清远市"),
    ("Chaozhou", "潮州市"),
    ("Jieyang", "揭阳市"),
    ("Yunfu", "云浮市"),
];

impl Default for Cities {
    fn default() -> Self {
        Self(
            GUANGDONG.iter().map(|(name, chinese)| City { name: (*name).into(), chinese: (*chinese).into() }).collect(),
        )
    }
}

impl Cities {
    /// The cities given, or an error naming the first that repeats or has no name.
    pub fn new(cities: Vec<City>) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        for city in &cities {
            if city.name.is_empty() || city.name.contains([':', '/']) {
                return Err(format!("{:?} is not a city name (no ':' or '/', not empty)", city.name));
            }
            if !seen.insert(city.name.as_str()) {
                return Err(format!("{} is listed twice", city.name));
            }
        }
        if cities.is_empty() {
            return Err("no city is listed".into());
        }
        Ok(Self(cities))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|c| c.name == name)
    }

    pub fn get(&self, name: &str) -> Option<&City> {
        self.0.iter().find(|c| c.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &City> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_guangdongs_twenty_one_cities_each_once() {
        let cities = Cities::default();
        assert_eq!(cities.len(), 21);
        assert!(Cities::new(cities.iter().cloned().collect()).is_ok(), "none twice");
        assert_eq!(cities.get("Guangzhou").map(|c| c.chinese.as_str()), Some("广州市"));
        assert!(!cities.contains("Atlantis") && !cities.contains("Wuhan"));
    }

    #[test]
    fn a_list_with_a_city_twice_or_a_separator_is_refused() {
        let city = |name: &str| City { name: name.into(), chinese: String::new() };
        assert!(Cities::new(vec![city("A"), city("A")]).unwrap_err().contains("twice"));
        assert!(Cities::new(vec![city("A:B")]).is_err());
        assert!(Cities::new(vec![]).is_err());
    }
}
