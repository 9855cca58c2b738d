//! The synthetic province: cities, schools and every person's place in the five-level
//! network, built from the seed's figures.

use std::fmt;

use rand::Rng;
use wire::pb;

use crate::halls::{Hall, halls};
use crate::random::{SplitMix64, seeded};

/// The seed's figures for the whole province (DOMAIN.md, "Who reports").
const SCHOOLS: f64 = 156.0;
const STUDENTS: f64 = 558_000.0;
const STAFF: f64 = 32_000.0;

const STUDENTS_PER_DEPARTMENT: f64 = 600.0;
const STUDENTS_PER_CLASS: f64 = 45.0;
const BEDS: std::ops::RangeInclusive<usize> = 6..=8;
/// Dorm rooms per floor, for room numbers such as 214.
const ROOMS_PER_FLOOR: usize = 20;
/// Staff dorms are in building B00; students' dorms in the building of their department.
const STAFF_BUILDING: u16 = 0;
const STAFF_IN_DORM: f64 = 0.10;

pub const GRADES: [&str; 3] = ["2017", "2018", "2019"];

/// Guangdong's 21 prefecture-level cities with the number of technical schools each gets
/// at scale 1. The split is invented, but plausible: the capital and the Pearl River Delta
/// hold most schools; the weights sum to the seed's 156.
pub(crate) const CITIES: [(&str, u32); 21] = [
    ("Guangzhou", 30),
    ("Shenzhen", 12),
    ("Foshan", 12),
    ("Dongguan", 10),
    ("Huizhou", 8),
    ("Jiangmen", 8),
    ("Zhongshan", 7),
    ("Zhuhai", 6),
    ("Shantou", 6),
    ("Zhanjiang", 7),
    ("Zhaoqing", 6),
    ("Maoming", 6),
    ("Meizhou", 5),
    ("Shaoguan", 5),
    ("Qingyuan", 5),
    ("Jieyang", 5),
    ("Heyuan", 4),
    ("Yangjiang", 4),
    ("Chaozhou", 3),
    ("Shanwei", 3),
    ("Yunfu", 4),
];

/// Staff roles and their shares in percent.
const STAFF_ROLES: [(pb::Role, u32); 6] = [
    (pb::Role::Teacher, 55),
    (pb::Role::Staff, 20),
    (pb::Role::TemporaryHire, 5),
    (pb::Role::PropertyManagement, 8),
    (pb::Role::CanteenWorker, 8),
    (pb::Role::OtherResident, 4),
];

/// Where a person is when registered: on campus ~90%, at home ~8%, still in Hubei ~2%.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts {
    OnCampus,
    AtHome,
    InHubei,
}

/// A student's class: the grade (one of [`GRADES`]) and the class number within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Class {
    pub grade: &'static str,
    pub number: u16,
}

/// A dorm room, written like "B03-214": building, floor and room on the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dorm {
    pub building: u16,
    pub room: u16,
}

impl fmt::Display for Dorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B{:02}-{}", self.building, self.room)
    }
}

/// One person of a school. Kept compact (codes are rendered on demand) because the whole
/// province holds some 590,000 of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// 1-based within the school; the id is "P00001".
    pub number: u32,
    pub role: pb::Role,
    /// 1-based; the code is "D01".
    pub department: u16,
    /// Students only.
    pub class: Option<Class>,
    pub dorm: Option<Dorm>,
    pub whereabouts: Whereabouts,
}

impl Person {
    pub fn id(&self) -> String {
        format!("P{:05}", self.number)
    }

    pub fn is_student(&self) -> bool {
        self.role == pb::Role::Student
    }

    pub fn placement(&self) -> pb::Placement {
        pb::Placement {
            department: format!("D{:02}", self.department),
            grade: self.class.map(|c| c.grade.to_owned()).unwrap_or_default(),
            class_name: self.class.map(|c| format!("C{:02}", c.number)).unwrap_or_default(),
            dorm: self.dorm.map(|d| d.to_string()).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct School {
    /// "S001".
    pub code: String,
    pub city: &'static str,
    pub departments: u16,
    /// Students first (by department, grade and class), then staff.
    pub persons: Vec<Person>,
}

impl School {
    pub fn students(&self) -> usize {
        self.persons.iter().filter(|p| p.is_student()).count()
    }

    pub fn staff(&self) -> usize {
        self.persons.len() - self.students()
    }
}

/// The whole synthetic province; a pure function of `(scale, seed)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Province {
    schools: Vec<School>,
    halls: Vec<Hall>,
}

impl Province {
    /// `scale` 1 is the whole province; it multiplies schools and persons alike, with at
    /// least one school of at least one student, and the cities' service halls (see
    /// [`crate::halls`]).
    pub fn generate(scale: f64, seed: u64) -> Province {
        let schools = ((SCHOOLS * scale).round() as usize).max(1);
        let students = ((STUDENTS * scale / schools as f64).round() as usize).max(1);
        let staff = (STAFF * scale / schools as f64).round() as usize;
        let schools = (0..schools)
            .map(|i| {
                // Each school has its own random stream, so a school does not depend on
                // the ones generated before it.
                let mut rng = seeded(&[PROVINCE_STREAM, seed, i as u64]);
                build_school(i, city_of(i, schools), students, staff, &mut rng)
            })
            .collect();
        Province { schools, halls: halls(scale) }
    }

    pub fn schools(&self) -> &[School] {
        &self.schools
    }

    /// The service-window halls: the department's, then each city's.
    pub fn halls(&self) -> &[Hall] {
        &self.halls
    }

    pub fn persons(&self) -> usize {
        self.schools.iter().map(|s| s.persons.len()).sum()
    }
}

const PROVINCE_STREAM: u64 = 1;
pub(crate) const DAY_STREAM: u64 = 2;

/// Spreads the schools over the cities in proportion to their weights, each school taking
/// the city at the middle of its share of the province.
fn city_of(school: usize, schools: usize) -> &'static str {
    let total: u32 = CITIES.iter().map(|(_, w)| w).sum();
    let position = (school as f64 + 0.5) * f64::from(total) / schools as f64;
    let mut upto = 0.0;
    for (city, weight) in CITIES {
        upto += f64::from(weight);
        if position < upto {
            return city;
        }
    }
    CITIES[CITIES.len() - 1].0
}

fn build_school(index: usize, city: &'static str, students: usize, staff: usize, rng: &mut SplitMix64) -> School {
    let departments = ((students as f64 / STUDENTS_PER_DEPARTMENT).round() as usize).max(1);
    let mut persons: Vec<Person> = Vec::with_capacity(students + staff);
    fn new_person(
        persons: &mut Vec<Person>,
        role: pb::Role,
        department: usize,
        class: Option<Class>,
        rng: &mut SplitMix64,
    ) {
        let number = persons.len() as u32 + 1;
        let department = department as u16 + 1;
        persons.push(Person { number, role, department, class, dorm: None, whereabouts: whereabouts(rng) });
    }

    for (department, in_department) in split(students, departments).into_iter().enumerate() {
        let first = persons.len();
        for (grade, in_grade) in split(in_department, GRADES.len()).into_iter().enumerate() {
            let classes = ((in_grade as f64 / STUDENTS_PER_CLASS).round() as usize).max(1);
            for (class, in_class) in split(in_grade, classes).into_iter().enumerate() {
                let class = Class { grade: GRADES[grade], number: class as u16 + 1 };
                for _ in 0..in_class {
                    new_person(&mut persons, pb::Role::Student, department, Some(class), rng);
                }
            }
        }
        // Students are in class order, so filling rooms in turn puts the students at a
        // class boundary into a dorm shared by two classes.
        let building = department as u16 + 1;
        assign_dorms(persons[first..].iter_mut().collect(), building, rng);
    }

    let first_staff = persons.len();
    for n in 0..staff {
        let role = staff_role(rng);
        new_person(&mut persons, role, n % departments, None, rng);
    }
    let lodgers: Vec<&mut Person> =
        persons[first_staff..].iter_mut().filter(|_| rng.random_bool(STAFF_IN_DORM)).collect();
    assign_dorms(lodgers, STAFF_BUILDING, rng);

    School { code: format!("S{:03}", index + 1), city, departments: departments as u16, persons }
}

/// `n` split into `parts` near-equal sizes, the larger ones first.
fn split(n: usize, parts: usize) -> Vec<usize> {
    (0..parts).map(|i| n / parts + usize::from(i < n % parts)).collect()
}

fn whereabouts(rng: &mut SplitMix64) -> Whereabouts {
    match rng.random::<f64>() {
        x if x < 0.90 => Whereabouts::OnCampus,
        x if x < 0.98 => Whereabouts::AtHome,
        _ => Whereabouts::InHubei,
    }
}

fn staff_role(rng: &mut SplitMix64) -> pb::Role {
    let mut pick = rng.random_range(0..STAFF_ROLES.iter().map(|(_, w)| w).sum::<u32>());
    for (role, weight) in STAFF_ROLES {
        if pick < weight {
            return role;
        }
        pick -= weight;
    }
    unreachable!("pick is below the sum of the weights")
}

/// Fills rooms of 6 to 8 beds in order.
fn assign_dorms(persons: Vec<&mut Person>, building: u16, rng: &mut SplitMix64) {
    let mut persons = persons.into_iter();
    for (room, beds) in room_sizes(persons.len(), rng).into_iter().enumerate() {
        let dorm = Dorm { building, room: ((room / ROOMS_PER_FLOOR + 1) * 100 + room % ROOMS_PER_FLOOR + 1) as u16 };
        for person in persons.by_ref().take(beds) {
            person.dorm = Some(dorm);
        }
    }
}

/// Room occupancies of 6 to 8 that add up to `n`. Each pick leaves a rest that can still
/// be split that way, so only an `n` that cannot be split at all (1–5, 9–11, 17) ends
/// with a smaller last room.
fn room_sizes(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let splittable = |r: usize| r == 0 || BEDS.contains(&r) || (12..=16).contains(&r) || r >= 18;
    let mut sizes = Vec::with_capacity(n / 6 + 1);
    let mut left = n;
    while left > 0 {
        let fitting: Vec<usize> = BEDS.filter(|&b| b <= left && splittable(left - b)).collect();
        let size = if fitting.is_empty() { left.min(*BEDS.end()) } else { fitting[rng.random_range(0..fitting.len())] };
        sizes.push(size);
        left -= size;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    #[test]
    fn the_same_scale_and_seed_give_the_same_province() {
        assert_eq!(Province::generate(0.02, 7), Province::generate(0.02, 7));
        assert_ne!(Province::generate(0.02, 7), Province::generate(0.02, 8));
    }

    #[test]
    fn the_whole_province_matches_the_seeds_figures() {
        let province = Province::generate(1.0, 7);
        let schools = province.schools();
        assert_eq!(schools.len(), 156);
        let students: usize = schools.iter().map(School::students).sum();
        let staff: usize = schools.iter().map(School::staff).sum();
        assert!((students as f64 / 558_000.0 - 1.0).abs() <= 0.005, "{students} students");
        assert!((staff as f64 / 32_000.0 - 1.0).abs() <= 0.005, "{staff} staff");
        assert_eq!(province.persons(), students + staff);
        assert_eq!(schools.iter().map(|s| s.city).collect::<HashSet<_>>().len(), 21);

        let classes: HashSet<_> = schools
            .iter()
            .flat_map(|s| s.persons.iter().filter_map(move |p| p.class.map(|c| (&s.code, p.department, c))))
            .collect();
        let average = students as f64 / classes.len() as f64;
        assert!((40.0..=50.0).contains(&average), "classes average {average:.1} students");

        let mut shared = 0;
        for school in schools {
            // Each dorm's occupants' classes, dorms in the order they were filled.
            let mut order = Vec::new();
            let mut occupants: HashMap<Dorm, Vec<(u16, Option<Class>)>> = HashMap::new();
            for person in &school.persons {
                let Some(dorm) = person.dorm else { continue };
                occupants
                    .entry(dorm)
                    .or_insert_with(|| {
                        order.push(dorm);
                        Vec::new()
                    })
                    .push((person.department, person.class));
            }
            for dorm in &order[..order.len() - 1] {
                let n = occupants[dorm].len();
                assert!(BEDS.contains(&n), "{} {dorm} holds {n}", school.code);
            }
            shared += occupants.values().filter(|classes| classes.iter().collect::<HashSet<_>>().len() >= 2).count();
        }
        assert!(shared > 0, "no dorm holds two classes");
    }

    #[test]
    fn staff_have_a_department_and_no_class() {
        let province = Province::generate(0.05, 3);
        for school in province.schools() {
            for person in school.persons.iter().filter(|p| !p.is_student()) {
                let placement = person.placement();
                assert!(placement.grade.is_empty() && placement.class_name.is_empty());
                assert!((1..=school.departments).contains(&person.department));
            }
        }
    }

    #[test]
    fn a_tiny_scale_still_has_a_school_and_a_student() {
        let province = Province::generate(0.0001, 1);
        assert_eq!(province.schools().len(), 1);
        assert!(province.schools()[0].students() >= 1);
    }

    #[test]
    fn rooms_hold_six_to_eight_whenever_that_is_possible() {
        let mut rng = seeded(&[9]);
        for n in 0..200 {
            let sizes = room_sizes(n, &mut rng);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            let splittable = !matches!(n, 1..=5 | 9..=11 | 17);
            let full = sizes.iter().filter(|s| BEDS.contains(s)).count();
            assert_eq!(full == sizes.len(), splittable, "{n}: {sizes:?}");
        }
    }
}
