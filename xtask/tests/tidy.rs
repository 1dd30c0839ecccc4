//! The repository's conventions, checked so they cannot drift (in the
//! manner of rust-analyzer's `tidy`): the crate dependency rules of
//! `docs/ARCHITECTURE.md`, one declaration per third-party crate, the libtorch
//! pairing, documented public items, no machine's absolute paths in committed
//! files, and the README's test line equal to CI's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// `cargo metadata` of the workspace (without resolving: offline and fast).
fn metadata() -> Value {
    cargo_metadata("--no-deps")
}

/// `cargo metadata` with `scope`: `--no-deps`, or `--offline` for every package.
fn cargo_metadata(scope: &str) -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", scope])
        .current_dir(repository())
        .output()
        .expect("cannot run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("cargo metadata printed no JSON")
}

/// Each workspace package's normal (not dev, not build) dependencies.
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let metadata = metadata();
    let mut packages = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let dependencies = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dependency| dependency["kind"].is_null())
            .map(|dependency| dependency["name"].as_str().unwrap().to_owned())
            .collect();
        packages.insert(package["name"].as_str().unwrap().to_owned(), dependencies);
    }
    packages
}

#[test]
fn crates_depend_only_as_the_architecture_allows() {
    let packages = normal_dependencies();
    let workspace: BTreeSet<String> = packages.keys().cloned().collect();
    let ours = |name: &str| -> BTreeSet<String> {
        packages[name].iter().filter(|dependency| workspace.contains(*dependency)).cloned().collect()
    };
    let set = |names: &[&str]| -> BTreeSet<String> { names.iter().map(|name| name.to_string()).collect() };
    // The layers of docs/ARCHITECTURE.md: each crate's workspace dependencies, exactly.
    let allowed: &[(&str, &[&str])] = &[
        ("datasets", &[]),
        ("idx", &[]),
        ("augment", &[]),
        ("libtorch-link", &[]),
        ("model", &[]),
        ("preprocess", &["augment", "datasets"]),
        ("report", &[]),
        ("runfiles", &[]),
        ("scoring", &[]),
        ("serve", &["datasets", "preprocess", "runfiles", "scoring"]),
        ("xtask", &["datasets"]),
        ("trainer", &["augment", "datasets", "idx", "model", "preprocess", "report", "runfiles", "scoring", "serve"]),
    ];
    for (name, expected) in allowed {
        assert_eq!(ours(name), set(expected), "{name}'s workspace dependencies differ from docs/ARCHITECTURE.md");
    }
    assert_eq!(
        workspace,
        allowed.iter().map(|(name, _)| name.to_string()).collect(),
        "a crate is missing from the dependency rules (add it here and to docs/ARCHITECTURE.md)"
    );
    // Only model and the binaries touch libtorch; libraries report typed errors, binaries use anyhow.
    for (name, dependencies) in &packages {
        let binary = ["trainer", "xtask"].contains(&name.as_str());
        if !["model", "trainer"].contains(&name.as_str()) {
            assert!(!dependencies.contains("tch") && !dependencies.contains("torch-sys"), "{name} depends on libtorch");
        }
        assert!(
            binary || !dependencies.contains("anyhow"),
            "{name}: a library's errors are typed (thiserror); anyhow is for binaries"
        );
    }
}

#[test]
fn every_dependency_is_declared_once_in_the_workspace() {
    for manifest in manifests() {
        let text = read(&manifest);
        let mut section = String::new();
        for line in text.lines() {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let is_dependency_section = section.ends_with("dependencies]");
            let line = line.trim();
            if !is_dependency_section || line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                line.ends_with(".workspace = true") || line.contains("workspace = true"),
                "{}: `{line}` in {section} must be `name.workspace = true`, declared once in the root Cargo.toml",
                manifest.display()
            );
        }
    }
}

fn manifests() -> Vec<PathBuf> {
    let mut manifests = vec![repository().join("xtask/Cargo.toml")];
    for entry in std::fs::read_dir(repository().join("crates")).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if manifest.exists() {
            manifests.push(manifest);
        }
    }
    manifests
}

/// The value of `const NAME: &str = "...";` in `text`.
fn string_constant(text: &str, name: &str) -> Option<String> {
    let line = text.lines().find(|line| line.contains(&format!("const {name}: &str = ")))?;
    Some(line.split('"').nth(1)?.to_owned())
}

#[test]
fn the_tch_pin_and_the_installed_libtorch_agree() {
    let root = read(&repository().join("Cargo.toml"));
    let pin = |name: &str| {
        let line = root.lines().find(|line| line.starts_with(&format!("{name} = \"="))).unwrap_or_else(|| {
            panic!("the root Cargo.toml must pin {name} exactly (`{name} = \"=x.y.z\"`): the libtorch pairing depends on it")
        });
        line.split('"').nth(1).unwrap().trim_start_matches('=').to_owned()
    };
    let (tch, torch_sys) = (pin("tch"), pin("torch-sys"));
    assert_eq!(tch, torch_sys, "tch and torch-sys must be pinned to one version");
    let recorded = string_constant(&read(&repository().join("crates/trainer/src/train/recipe.rs")), "TCH_VERSION");
    assert_eq!(
        recorded.as_deref(),
        Some(tch.as_str()),
        "the trainer records another tch version than it is built with"
    );

    // The libtorch torch-sys expects (its build script states it) is the one `cargo xtask setup` installs.
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(repository())
        .output()
        .expect("cannot run cargo metadata");
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata printed no JSON");
    let torch_sys_manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "torch-sys" && package["version"] == torch_sys.as_str())
        .and_then(|package| package["manifest_path"].as_str())
        .expect("torch-sys is not in the dependency graph");
    let build_script = Path::new(torch_sys_manifest).with_file_name("build.rs");
    let expected = string_constant(&read(&build_script), "TORCH_VERSION").expect("torch-sys states no TORCH_VERSION");
    let installed = string_constant(&read(&repository().join("xtask/src/setup.rs")), "TORCH_VERSION");
    assert_eq!(installed, Some(expected), "`cargo xtask setup` installs another torch than tch {tch} was made for");
}

/// Every `.rs` file of the crates' and xtask's `src/`.
/// Adds the `.rs` files below `dir` (none when it does not exist) to `files`.
fn walk_rust(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() {
            walk_rust(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// The Rust files of `xtask/src` and of each crate's folders among `folders`.
fn rust_files(folders: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk_rust(&repository().join("xtask/src"), &mut files);
    for entry in std::fs::read_dir(repository().join("crates")).unwrap().flatten() {
        for folder in folders {
            walk_rust(&entry.path().join(folder), &mut files);
        }
    }
    files.sort();
    files
}

/// The library and binary sources.
fn sources() -> Vec<PathBuf> {
    rust_files(&["src"])
}

/// The undocumented `pub` items of one source file, as `file:line: text`.
fn undocumented_public_items(path: &Path) -> Vec<String> {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    let mut in_tests = false;
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            in_tests = true;
        }
        if in_tests {
            continue;
        }
        let is_item =
            ["fn ", "struct ", "enum ", "trait ", "const ", "static ", "type ", "mod ", "async fn ", "unsafe fn "]
                .iter()
                .any(|kind| trimmed.starts_with(&format!("pub {kind}")));
        let is_field = trimmed.starts_with("pub ") && !is_item && trimmed.contains(": ") && trimmed.ends_with(',');
        if !is_item && !is_field {
            continue;
        }
        // A `pub mod name;` is documented by the `//!` at the top of its own file.
        if trimmed.starts_with("pub mod ") && trimmed.ends_with(';') {
            continue;
        }
        let mut above = index;
        let documented = loop {
            if above == 0 {
                break false;
            }
            above -= 1;
            let previous = lines[above].trim_start();
            if previous.starts_with("#[") || previous.starts_with("#![") || previous.ends_with(")]") {
                continue;
            }
            break previous.starts_with("///");
        };
        if !documented {
            missing.push(format!("{}:{}: {}", path.display(), index + 1, trimmed));
        }
    }
    missing
}

#[test]
fn every_public_item_is_documented() {
    let missing: Vec<String> = sources().iter().flat_map(|path| undocumented_public_items(path)).collect();
    assert!(missing.is_empty(), "public items without a doc comment:\n{}", missing.join("\n"));
}

/// Committed files, as git lists them.
fn committed_files() -> Vec<PathBuf> {
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repository())
        .output()
        .expect("the tidy test needs git (to list the committed files)");
    assert!(output.status.success(), "git ls-files failed: {}", String::from_utf8_lossy(&output.stderr));
    output
        .stdout
        .split(|&byte| byte == 0)
        .filter(|name| !name.is_empty())
        .map(|name| repository().join(String::from_utf8_lossy(name).as_ref()))
        .collect()
}

#[test]
fn committed_files_hold_no_absolute_path_of_a_machine() {
    // Where checkouts, homes and scratch runs live on the machines this project is built on.
    let machine_roots = ["/work/", "/home/", "/root/", "/Users/", "/tmp/"];
    let this_file = repository().join("xtask/tests/tidy.rs");
    let mut found = Vec::new();
    for path in committed_files() {
        if path == this_file || path.extension().is_some_and(|extension| extension == "lock") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        for (index, line) in text.lines().enumerate() {
            for root in machine_roots {
                // A root after a quote or a space or at the start of a line is a path, not part of a URL.
                let as_path = [format!("\"{root}"), format!(" {root}"), format!("'{root}"), format!("={root}")];
                if line.starts_with(root) || as_path.iter().any(|pattern| line.contains(pattern.as_str())) {
                    let shown: String = line.trim().chars().take(160).collect();
                    found.push(format!("{}:{}: {shown}", path.display(), index + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "absolute paths of a machine in committed files:\n{}", found.join("\n"));
}

#[test]
fn the_readme_test_line_is_what_ci_runs() {
    let ci = read(&repository().join(".ci/run"));
    let test_line = ci
        .lines()
        .find_map(|line| line.strip_prefix("TEST_LINE='").and_then(|rest| rest.strip_suffix('\'')))
        .expect(".ci/run states its TEST_LINE");
    let last_command = ci.lines().rev().find(|line| !line.trim().is_empty() && !line.starts_with('#')).unwrap();
    assert_eq!(last_command.trim(), test_line, ".ci/run must run its TEST_LINE, nothing else");
    let readme = read(&repository().join("README.md"));
    assert!(
        readme.lines().any(|line| line.trim() == test_line),
        "README.md must show the test line CI runs, on a line of its own: {test_line}"
    );
}

#[test]
fn unsafe_code_lives_in_the_model_crates_ffi_module_alone() {
    // The workspace denies `unsafe_code`; an `allow` lifts it, so this is where it may be lifted:
    // the module that calls the C++ shim (`crates/model/src/fused.rs`), and nowhere else.
    let mut lifts = Vec::new();
    let mut unsafe_blocks = Vec::new();
    for path in sources() {
        let relative = path.strip_prefix(repository()).unwrap().display().to_string();
        for line in read(&path).lines() {
            if line.contains("allow(unsafe_code)") {
                lifts.push(format!("{relative}: {}", line.trim()));
            }
            let code = line.split("//").next().unwrap_or_default();
            if code.contains("unsafe {") || code.contains("unsafe extern") || code.contains("unsafe fn") {
                unsafe_blocks.push(relative.clone());
            }
        }
    }
    assert_eq!(lifts, ["crates/model/src/lib.rs: #[allow(unsafe_code)]"], "unsafe_code allowed elsewhere");
    let lib = read(&repository().join("crates/model/src/lib.rs"));
    assert!(lib.contains("#[allow(unsafe_code)]\nmod fused;"), "the allow is on `mod fused` alone");
    unsafe_blocks.dedup();
    assert_eq!(unsafe_blocks, ["crates/model/src/fused.rs"], "unsafe code outside the FFI module");
    // Every unsafe block says why it is sound.
    let fused = read(&repository().join("crates/model/src/fused.rs"));
    let blocks = fused.matches("unsafe {").count();
    assert!(blocks > 0 && fused.matches("// SAFETY:").count() == blocks, "one SAFETY comment per unsafe block");
}

/// The methods tch offers in a fallible form (`f_NAME`): calling `NAME`
/// itself panics when libtorch fails. Read from tch's own source.
fn tch_fallible_names() -> BTreeSet<String> {
    let metadata = cargo_metadata("--offline");
    let tch = metadata["packages"].as_array().unwrap().iter().find(|package| package["name"] == "tch").unwrap();
    let source = Path::new(tch["manifest_path"].as_str().unwrap()).parent().unwrap().join("src");
    let mut names = BTreeSet::new();
    for file in ["wrappers/tensor_fallible_generated.rs", "tensor/mod.rs"] {
        for line in read(&source.join(file)).lines() {
            if let Some(rest) = line.trim_start().strip_prefix("pub fn f_") {
                names.insert(rest.split(['(', '<']).next().unwrap().to_owned());
            }
        }
    }
    assert!(
        names.len() > 1000 && names.contains("to_device"),
        "tch's fallible methods not found in {}",
        source.display()
    );
    names
}

#[test]
fn the_model_crate_makes_no_panicking_libtorch_call_outside_tests() {
    // Names tch shares with methods of integers, floats, strings, readers and
    // iterators, which this crate calls on those.
    let not_tensor_methods = [
        "sum", "max", "min", "clone", "sqrt", "abs", "copy", "eq", "ne", "le", "lt", "ge", "gt", "take", "split",
        "data",
    ];
    // Files that may call them, each with its reason.
    let allowed: &[(&str, &str)] = &[
        ("src/bin/eval_memory.rs", "a measurement program run by hand and by its test, not a path of the library"),
        ("src/summary.rs", "layer arithmetic: its `batch_norm` is its own builder's, and it holds no tensor"),
    ];
    let fallible = tch_fallible_names();
    let crate_dir = repository().join("crates/model");
    let mut files = Vec::new();
    for file in sources().into_iter().filter(|file| file.starts_with(crate_dir.join("src"))) {
        let relative = file.strip_prefix(&crate_dir).unwrap().display().to_string();
        if !allowed.iter().any(|(allowed_file, _)| relative == *allowed_file) {
            files.push((relative, file));
        }
    }
    let mut panicking = Vec::new();
    for (relative, file) in files {
        let text = read(&file);
        // Tests may panic: everything from the first test module on is skipped.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (number, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            for (index, _) in line.match_indices('(') {
                let before = &line[..index];
                let name_start =
                    before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |at| at + 1);
                let name = &before[name_start..];
                let called_on = &before[..name_start];
                let is_method = called_on.ends_with('.') || called_on.ends_with("Tensor::");
                if is_method && fallible.contains(name) && !not_tensor_methods.contains(&name) {
                    panicking.push(format!("crates/model/{relative}:{}: {name}: {}", number + 1, trimmed));
                }
            }
        }
    }
    assert!(
        panicking.is_empty(),
        "panicking libtorch calls outside tests (use tch's f_ form and return the error):\n{}",
        panicking.join("\n")
    );
}

/// The Rust files of `crates/*/{src,examples,benches}` and `xtask/src`: all code but tests.
fn code_outside_tests() -> Vec<PathBuf> {
    rust_files(&["src", "examples", "benches"])
}

/// Whether `line` starts a function (`fn`, after any of `pub`, `pub(..)`, `const`, `async`, `unsafe`).
fn starts_function(line: &str) -> bool {
    let mut rest = line.trim_start();
    if let Some(after) = rest.strip_prefix("pub") {
        rest = after.strip_prefix(' ').or_else(|| after.split_once(") ").map(|(_, tail)| tail)).unwrap_or(after);
    }
    for qualifier in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    rest.starts_with("fn ")
}

/// Every function of `text` (rustfmt's layout: the body closes at the
/// signature's indentation) before its `#[cfg(test)]` module, as
/// `(first line, lines)`.
fn function_lengths(text: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().take_while(|line| line.trim() != "#[cfg(test)]").collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if !starts_function(lines[index]) {
            index += 1;
            continue;
        }
        let indent = &lines[index][..lines[index].len() - lines[index].trim_start().len()];
        let Some(body) = (index..lines.len()).find(|&at| lines[at].ends_with('{') || lines[at].ends_with(';')) else {
            break;
        };
        if lines[body].ends_with(';') {
            index = body + 1;
            continue;
        }
        let end = (body..lines.len()).find(|&at| lines[at] == format!("{indent}}}")).unwrap_or(lines.len() - 1);
        found.push((index + 1, end - index + 1));
        index = end + 1;
    }
    found
}

#[test]
fn no_function_outside_tests_is_over_sixty_lines() {
    assert_eq!(
        function_lengths("fn a() {\n    x;\n}\n\n    pub(crate) async fn b(\n        y: u8,\n    ) {\n    }\n"),
        [(1, 3), (5, 4)]
    );
    let mut long = Vec::new();
    for path in code_outside_tests() {
        for (line, length) in function_lengths(&read(&path)) {
            if length > 60 {
                long.push(format!("{}:{line}: {length} lines", path.strip_prefix(repository()).unwrap().display()));
            }
        }
    }
    assert!(long.is_empty(), "functions over 60 lines (split them into named steps):\n{}", long.join("\n"));
}

#[test]
fn the_trainers_opening_comment_names_the_crates_it_uses() {
    let packages = normal_dependencies();
    let workspace: BTreeSet<&String> = packages.keys().collect();
    let used: BTreeSet<String> =
        packages["trainer"].iter().filter(|dependency| workspace.contains(dependency)).cloned().collect();
    let text = read(&repository().join("crates/trainer/src/main.rs"));
    let opening: String = text.lines().take_while(|line| line.starts_with("//!")).collect::<Vec<_>>().join(" ");
    let list = opening.split_once('(').and_then(|(_, rest)| rest.split_once(')')).map_or("", |(list, _)| list);
    let named: BTreeSet<String> = list.split(',').map(|name| name.trim().trim_matches('`').to_owned()).collect();
    assert_eq!(named, used, "crates/trainer/src/main.rs's opening comment lists other crates than it uses");
}
