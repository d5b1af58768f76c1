//! Lists the store conformance cases for `store_conformance!`: every `pub async fn` of
//! `src/store/conformance/*.rs` is a case, run on every store, so none is written and
//! forgotten, and none is listed by hand.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // `sqlx::migrate!` embeds the migrations but tells cargo of none on a stable compiler: a
    // new migration alone would leave the binary without it.
    println!("cargo::rerun-if-changed=../migrations");
    let dir = Path::new("src/store/conformance");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the conformance folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in &files {
        println!("cargo::rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file).expect("a case file");
        cases.extend(text.lines().filter_map(|line| {
            let rest = line.strip_prefix("pub async fn ")?;
            Some(rest.split(['(', '<']).next()?.trim().to_string())
        }));
    }
    let mut out = String::from(
        "/// Every case of the suite (written by `build.rs` from the case files).\n\
         macro_rules! every_case {\n    ($factory:path) => {\n        \
         $crate::store::conformance::store_conformance!(@cases $factory;\n",
    );
    for case in &cases {
        let _ = writeln!(out, "            {case},");
    }
    out.push_str("        );\n    };\n}\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("conformance_cases.rs");
    std::fs::write(target, out).expect("the list of cases");
}
