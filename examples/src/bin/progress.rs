//! Your progress along the learning path: which lessons there are, which you have completed,
//! each lesson's checks and exercises.
//!
//! ```sh
//! cargo run -p kdev-examples --bin progress                  # the lessons, and what you completed
//! cargo run -p kdev-examples --bin progress -- check informer # run lesson 7's checks; record it when they pass
//! cargo run -p kdev-examples --bin progress -- next           # the first lesson not completed, and its exercises
//! cargo run -p kdev-examples --bin progress -- exercises crd  # a lesson's exercises (its page's "Try next")
//! cargo run -p kdev-examples --bin progress -- reset [lesson] # forget one lesson, or all
//! ```
//!
//! A lesson's checks are its tests in `examples/tests/it` (the first lesson's are kdev-testenv's
//! discovery tests): they run the lesson and compare what it prints with what its page
//! promises, so they pass when the lesson runs as described on your machine. What you completed
//! is kept in `~/.local/share/kdev/progress.json` (`$XDG_DATA_HOME/kdev`, or the file
//! `$KDEV_PROGRESS` names), and nowhere else.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Prints a line on stdout; a reader that went away (`progress | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The lessons of the learning path, in order (docs/README.md).
const LESSONS: &[Lesson] = &[
    lesson(
        1,
        "cluster",
        "the embedded API server, kubectl, GVK and GVR",
        "testenv.md",
        TESTENV_DISCOVERY,
    ),
    lesson(
        2,
        "client_basics",
        "config, discovery, typed, raw and dynamic clients, a watch",
        "client_basics.md",
        "the_client_basics_lesson",
    ),
    lesson(
        3,
        "reflector",
        "list then watch, resume, relist on 410",
        "reflector.md",
        "the_reflector_lesson",
    ),
    lesson(
        4,
        "delta_fifo",
        "deltas, replace, tombstones, the in-order FIFO",
        "delta_fifo.md",
        "the_delta_fifo_lesson",
    ),
    lesson(
        5,
        "indexer",
        "indexers and the cache behind listers",
        "indexer.md",
        "the_indexer_lesson",
    ),
    lesson(
        6,
        "workqueue",
        "dedup, delays, rate limiters, priorities",
        "workqueue.md",
        "the_workqueue_lesson",
    ),
    lesson(
        7,
        "informer",
        "shared informers, handlers, listers",
        "informer.md",
        "the_informer_lesson",
    ),
    lesson(
        8,
        "controller_by_hand",
        "a controller wired by hand",
        "controller_by_hand.md",
        "the_controller_by_hand_lesson",
    ),
    lesson(
        9,
        "crd",
        "derive a custom resource and its CRD",
        "crd.md",
        "the_crd_lesson",
    ),
    lesson(
        10,
        "crd_versions",
        "versions, storage version, migration",
        "crd_versions.md",
        "the_crd_versions_lesson",
    ),
    lesson(
        11,
        "operator",
        "the MyApp operator quickstart",
        "operator.md",
        "the_operator_quickstart",
    ),
    lesson(
        12,
        "operator_patterns",
        "predicates, apply vs update, backoff",
        "operator_patterns.md",
        "the_operator_patterns_lesson",
    ),
    lesson(
        13,
        "webhook_by_hand",
        "raw AdmissionReview, a hand-built patch",
        "webhooks.md",
        "the_webhook_by_hand_lesson",
    ),
    lesson(
        14,
        "webhook",
        "typed validator and defaulter, CA injection",
        "webhooks.md",
        "the_webhook_lesson",
    ),
    lesson(
        15,
        "webhook_bare",
        "a webhook without a Service",
        "webhooks.md",
        "the_webhook_bare_lesson",
    ),
    lesson(
        16,
        "conversion",
        "a conversion webhook",
        "conversion.md",
        "the_conversion_lesson",
    ),
    coming(17, "scheduler_extender", "the kube-scheduler extender protocol"),
    coming(18, "custom_scheduler", "a small scheduling framework"),
    lesson(
        19,
        "leader_election",
        "leader election on a Lease",
        "leader_election.md",
        "the_leader_election_lesson",
    ),
    lesson(
        20,
        "leader_election_redis",
        "leader election on a Redis key",
        "leader_election.md",
        "the_leader_election_lesson",
    ),
    lesson(
        21,
        "feature_gates",
        "feature gates: stages, flags, emulated versions",
        "feature_gates.md",
        "the_feature_gates_lesson",
    ),
    coming(22, "custom_metrics", "custom metrics"),
    coming(23, "device_plugin", "a device plugin"),
    coming(24, "csi_driver", "a CSI driver"),
    coming(25, "cni_plugin", "a CNI plugin"),
    coming(26, "cri_runtime", "a CRI runtime"),
    coming(27, "aggregated_apiserver", "an aggregated API server"),
];

/// Lesson 1's checks are not a lesson program's: kdev-testenv's discovery tests.
const TESTENV_DISCOVERY: &str = "discovery::";

/// One lesson of the path.
#[derive(Debug)]
struct Lesson {
    number: u8,
    name: &'static str,
    title: &'static str,
    /// Its page in `docs/`; `None` while it is coming.
    page: Option<&'static str>,
    /// The test filter of its checks.
    checks: Option<&'static str>,
}

const fn lesson(
    number: u8,
    name: &'static str,
    title: &'static str,
    page: &'static str,
    checks: &'static str,
) -> Lesson {
    Lesson {
        number,
        name,
        title,
        page: Some(page),
        checks: Some(checks),
    }
}

const fn coming(number: u8, name: &'static str, title: &'static str) -> Lesson {
    Lesson {
        number,
        name,
        title,
        page: None,
        checks: None,
    }
}

impl Lesson {
    /// How to run it.
    fn run_command(&self) -> String {
        match self.name {
            "cluster" => "cargo run -p kdev-testenv --features k8s-openapi/latest -- serve".into(),
            "leader_election_redis" => "cargo run -p kdev-examples --bin leader_election -- --redis".into(),
            name => format!("cargo run -p kdev-examples --bin {name}"),
        }
    }

    /// The `cargo test` arguments that run its checks.
    fn test_args(&self) -> Option<Vec<&'static str>> {
        let filter = self.checks?;
        Some(if filter == TESTENV_DISCOVERY {
            vec![
                "test",
                "-p",
                "kdev-testenv",
                "--features",
                "k8s-openapi/latest",
                "--test",
                "it",
                filter,
            ]
        } else {
            vec!["test", "-p", "kdev-examples", "--test", "it", filter]
        })
    }
}

/// Finds a lesson by name or number.
fn find(which: &str) -> Result<&'static Lesson, String> {
    LESSONS
        .iter()
        .find(|l| l.name == which || which.parse::<u8>().is_ok_and(|n| n == l.number))
        .ok_or_else(|| format!("no lesson {which:?}: `cargo run -p kdev-examples --bin progress` lists them"))
}

/// What the learner completed: lesson name → when (RFC 3339, UTC).
#[derive(Debug, Default, PartialEq)]
struct Record {
    completed: BTreeMap<String, String>,
}

impl Record {
    /// Reads the record at `path`; a missing file is an empty record.
    fn load(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a progress record ({e}); fix it, or delete it to start over",
                path.display()
            )
        })?;
        let completed = value
            .get("completed")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| {
                format!(
                    "{} has no \"completed\" object; delete it to start over",
                    path.display()
                )
            })?
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(when) => Ok((k.clone(), when.to_string())),
                None => Err(format!(
                    "{}: lesson {k:?} has no completion time; fix it, or delete it to start over",
                    path.display()
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { completed })
    }

    /// Writes the record to `path`, creating its directory, through a temporary file so that an
    /// interrupted write never leaves half a record.
    fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&serde_json::json!({ "completed": self.completed }))
            .map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Where the record lives: `$KDEV_PROGRESS`, else `$XDG_DATA_HOME/kdev/progress.json`, else
/// `~/.local/share/kdev/progress.json`.
fn record_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("KDEV_PROGRESS").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or(
            "neither KDEV_PROGRESS, XDG_DATA_HOME nor HOME is set: say where to keep the record with KDEV_PROGRESS",
        )?;
    Ok(data.join("kdev").join("progress.json"))
}

/// The directory holding `docs/`.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bullets of a page's "Try next" section.
fn exercises(page: &str) -> Vec<String> {
    let Some((_, rest)) = page.split_once("\n## Try next\n") else {
        return Vec::new();
    };
    let section = rest.split("\n## ").next().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in section.lines() {
        if let Some(item) = line.strip_prefix("- ") {
            out.push(item.to_string());
        } else if let (Some(last), true) = (out.last_mut(), line.starts_with("  ")) {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    out
}

fn print_exercises(lesson: &Lesson) -> Result<(), String> {
    let Some(page) = lesson.page else {
        say!("lesson {} ({}) is coming: no exercises yet", lesson.number, lesson.name);
        return Ok(());
    };
    let path = workspace().join("docs").join(page);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    say!(
        "exercises of lesson {} ({}), from docs/{page}:",
        lesson.number,
        lesson.name
    );
    for item in exercises(&text) {
        say!("  - {item}");
    }
    Ok(())
}

fn list(record: &Record) {
    let available = LESSONS.iter().filter(|l| l.checks.is_some()).count();
    let done = LESSONS.iter().filter(|l| record.completed.contains_key(l.name)).count();
    say!("the kdev learning path: {done} of {available} available lessons completed");
    for l in LESSONS {
        let mark = match (record.completed.get(l.name), l.page) {
            (Some(_), _) => "[x]",
            (None, Some(_)) => "[ ]",
            (None, None) => " - ",
        };
        let page = l.page.map_or_else(|| "coming".to_string(), |p| format!("docs/{p}"));
        say!("{mark} {:>2}. {:<22} {:<58} {page}", l.number, l.name, l.title);
    }
}

/// Runs `lesson`'s checks with `cargo` and records the lesson when they pass.
fn check(lesson: &Lesson, cargo: &OsStr, path: &Path, now: &str) -> Result<bool, String> {
    let Some(args) = lesson.test_args() else {
        say!(
            "lesson {} ({}) is coming: nothing to check yet",
            lesson.number,
            lesson.name
        );
        return Ok(false);
    };
    // Lesson 20 is the Redis part of lesson 19's program, which skips it without redis-server.
    if lesson.name == "leader_election_redis"
        && !Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        say!(
            "lesson 20 needs redis-server on the PATH (e.g. `apt-get install redis-server`): its checks would skip it"
        );
        return Ok(false);
    }
    say!("running lesson {}'s checks: cargo {}", lesson.number, args.join(" "));
    let status = Command::new(cargo)
        .args(&args)
        .current_dir(workspace())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    if !status.success() {
        say!(
            "lesson {} ({}) is not complete: its checks failed (above). Run it with `{}` and compare with docs/{}.",
            lesson.number,
            lesson.name,
            lesson.run_command(),
            lesson.page.unwrap_or_default()
        );
        return Ok(false);
    }
    let mut record = Record::load(path)?;
    record.completed.insert(lesson.name.to_string(), now.to_string());
    record.save(path)?;
    say!(
        "lesson {} ({}) completed: recorded in {}",
        lesson.number,
        lesson.name,
        path.display()
    );
    Ok(true)
}

fn run(args: &[String]) -> Result<bool, String> {
    let path = record_path()?;
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_err(|e| e.to_string())?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["list"] => list(&Record::load(&path)?),
        ["check", which] => {
            let lesson = find(which)?;
            // `$CARGO` is the cargo that runs this program, when it does.
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            if !check(lesson, &cargo, &path, &now.to_string())? {
                return Ok(false);
            }
            print_exercises(lesson)?;
        }
        ["exercises", which] => print_exercises(find(which)?)?,
        ["next"] => {
            let record = Record::load(&path)?;
            match LESSONS
                .iter()
                .find(|l| l.checks.is_some() && !record.completed.contains_key(l.name))
            {
                Some(l) => {
                    say!(
                        "next: lesson {} ({}), docs/{}; when it runs as its page says: `cargo run -p kdev-examples --bin progress -- check {}`",
                        l.number,
                        l.name,
                        l.page.unwrap_or_default(),
                        l.name
                    );
                    print_exercises(l)?;
                }
                None => say!("every available lesson is completed"),
            }
        }
        ["reset"] => {
            Record::default().save(&path)?;
            say!("forgot every completed lesson");
        }
        ["reset", which] => {
            let lesson = find(which)?;
            let mut record = Record::load(&path)?;
            record.completed.remove(lesson.name);
            record.save(&path)?;
            say!("forgot lesson {} ({})", lesson.number, lesson.name);
        }
        _ => {
            return Err(
                "usage: progress [list | check <lesson> | next | exercises <lesson> | reset [<lesson>]]".into(),
            );
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_record(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kdev-progress-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("nested").join("progress.json")
    }

    #[test]
    fn every_available_lesson_has_its_program_its_page_and_a_check_that_names_a_test() {
        let root = workspace();
        let mut tests = String::new();
        for dir in ["examples/tests/it", "kdev-testenv/tests/it"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("the test directory") {
                tests += &std::fs::read_to_string(entry.expect("an entry").path()).unwrap_or_default();
            }
        }
        let index = std::fs::read_to_string(root.join("docs/README.md")).expect("docs/README.md");
        for (i, l) in LESSONS.iter().enumerate() {
            assert_eq!(usize::from(l.number), i + 1, "{l:?} is out of order");
            let Some(page) = l.page else {
                assert!(
                    index.contains(&format!("{}. `{}`", l.number, l.name)),
                    "{l:?}: docs/README.md does not list it as coming"
                );
                continue;
            };
            let in_index = format!("{}. [`{}`]({page})", l.number, l.name);
            assert!(root.join("docs").join(page).is_file(), "{l:?}: no docs/{page}");
            let filter = l.checks.expect("an available lesson has checks");
            if filter == TESTENV_DISCOVERY {
                assert!(tests.contains("mod discovery;"), "{l:?}");
                continue;
            }
            assert!(
                tests.contains(&format!("fn {filter}")),
                "{l:?}: no test starts with {filter}"
            );
            let program = match l.name {
                "leader_election_redis" => "leader_election",
                name => name,
            };
            assert!(
                root.join("examples/src/bin").join(format!("{program}.rs")).is_file(),
                "{l:?}: no examples/src/bin/{program}.rs"
            );
            if l.number != 20 {
                assert!(index.contains(&in_index), "{l:?}: docs/README.md lists it otherwise");
            }
        }
    }

    #[test]
    fn lessons_are_found_by_name_or_number() {
        assert_eq!(find("crd").expect("found").number, 9);
        assert_eq!(find("10").expect("found").name, "crd_versions");
        let unknown = find("crds").expect_err("no such lesson");
        assert!(unknown.contains("no lesson \"crds\""), "{unknown}");
    }

    #[test]
    fn the_record_round_trips_and_a_missing_file_is_empty() {
        let path = temp_record("round-trip");
        assert_eq!(Record::load(&path).expect("empty"), Record::default());
        let mut record = Record::default();
        record.completed.insert("crd".into(), "2026-11-24T10:00:00Z".into());
        record.save(&path).expect("saved");
        assert_eq!(Record::load(&path).expect("loaded"), record);
    }

    #[test]
    fn a_damaged_record_is_an_error_that_says_what_to_do() {
        let path = temp_record("damaged");
        Record::default().save(&path).expect("saved");
        for text in ["{not json", "[]", r#"{"completed": 3}"#, r#"{"completed": {"crd": 1}}"#] {
            std::fs::write(&path, text).expect("written");
            let err = Record::load(&path).expect_err(text);
            assert!(err.contains("delete it to start over"), "{text}: {err}");
        }
    }

    #[test]
    fn exercises_are_the_bullets_of_try_next_joined_across_lines() {
        let page = "# L\n\n## Try next\n\n- Run it\n  twice.\n- Read `x`.\n\n## Traps\n\n- not this\n";
        assert_eq!(exercises(page), ["Run it twice.", "Read `x`."]);
        assert!(exercises("# no section\n- a\n").is_empty());
        for l in LESSONS.iter().filter_map(|l| l.page) {
            let text = std::fs::read_to_string(workspace().join("docs").join(l)).expect("the page");
            assert!(!exercises(&text).is_empty(), "docs/{l} has no exercises");
        }
    }

    #[test]
    fn a_check_records_the_lesson_only_when_it_passes() {
        let lesson = find("workqueue").expect("found");
        let path = temp_record("check");
        // Run as cargo, `false` fails and `true` passes, whatever the arguments.
        let checked = |program: &str| check(lesson, OsStr::new(program), &path, "2026-11-24T10:00:00Z").expect("ran");
        assert!(!checked("false"));
        assert_eq!(Record::load(&path).expect("loaded"), Record::default());
        assert!(checked("true"));
        let record = Record::load(&path).expect("loaded");
        assert_eq!(
            record.completed.get("workqueue").map(String::as_str),
            Some("2026-11-24T10:00:00Z")
        );
        let coming = find("custom_scheduler").expect("found");
        assert!(!check(coming, OsStr::new("true"), &path, "now").expect("nothing to run"));
    }
}
