//! Lists the golden scenarios (`golden/*.toml`) for `golden.rs`, one test each: a failing
//! scenario names itself and hides none of the others.

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=golden");
    let mut names: Vec<String> = std::fs::read_dir("golden")
        .expect("tests/golden")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".toml") && !f.ends_with(".observed.toml"))
        .map(|f| f.trim_end_matches(".toml").to_owned())
        .collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "golden/{name}.toml: a scenario's file name must be a Rust identifier (a-z, 0-9, _)"
        );
        writeln!(out, "golden!({name});").unwrap();
    }
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("golden_scenarios.rs");
    std::fs::write(path, out).unwrap();
}
