//! Lesson 21 (`feature_gates`): the help text, refusals, AllAlpha, emulated versions, values
//! from the environment and the flag, the operator's behaviour under them, and the metric.

use std::process::Command;

use super::{assert_shows, clear_lesson_features, run_anywhere, run_anywhere_with};

#[test]
fn the_feature_gates_lesson_runs_its_operator_with_the_default_gates() {
    let (out, _) = run_anywhere(env!("CARGO_BIN_EXE_feature_gates"));
    assert_shows(
        &out,
        &[
            "  AllAlpha=true|false (ALPHA - default=false)\n  AllBeta=true|false (BETA - default=false)\n  KeyCount=true|false (ALPHA - default=false)\n(GA",
            "  Nope=true        refused: unrecognized feature gate: Nope",
            "  Stamp=false      refused: cannot set feature gate Stamp to false, feature is locked to true",
            "  KeyCount=maybe   refused: invalid value of KeyCount=maybe, err: strconv.ParseBool: parsing \"maybe\": invalid syntax",
            "  KeyCount         refused: missing bool value for KeyCount",
            "accepted with a warning: Setting GA feature gate Stamp=true. It will be removed in a future release.",
            "  KeyCount (alpha): true   Stamp (GA): true",
            "  0.1: KeyCount PRE-ALPHA false      LegacyLabel BETA true         Stamp ALPHA false",
            "  0.4: KeyCount ALPHA false          LegacyLabel DEPRECATED false  Stamp GA true",
            "at 0.1, KeyCount=true refused: cannot set feature gate KeyCount to true, feature is PreAlpha at emulated version 0.1",
            "emulated version 0.4 (this release); set explicitly: nothing",
            "  annotation lesson.kdev.dev/features: \"KeyCount=false,LegacyLabel=false,Stamp=true\"",
            "  annotation lesson.kdev.dev/stamped-by: \"cm-stamper\"",
            "  kubernetes_feature_enabled{name=\"KeyCount\",stage=\"ALPHA\"} 0",
            "  kubernetes_feature_enabled{name=\"Stamp\",stage=\"\"} 1",
        ],
    );
    assert!(
        !out.contains("lesson.kdev.dev/keys"),
        "KeyCount is off by default:\n{out}"
    );
    assert!(
        !out.contains("cm-stamper.lesson.kdev.dev/legacy"),
        "LegacyLabel is off at 0.4:\n{out}"
    );
}

#[test]
fn the_feature_gates_lesson_takes_values_from_the_environment_and_the_flag_which_wins() {
    let (out, _) = run_anywhere_with(
        env!("CARGO_BIN_EXE_feature_gates"),
        &["--feature-gates", "LegacyLabel=true, KeyCount=true"],
        &[("LESSON_FEATURE_KeyCount", "false")],
    );
    assert_shows(
        &out,
        &[
            "from LESSON_FEATURE_* variables: KeyCount=false\n",
            "warning: Setting deprecated feature gate LegacyLabel=true. It will be removed in a future release.",
            "set explicitly: KeyCount=true,LegacyLabel=true",
            "  KeyCount     ALPHA      default false         -> true  (set)",
            "  annotation lesson.kdev.dev/keys: \"2\"",
            "  label      cm-stamper.lesson.kdev.dev/legacy: \"true\"",
            "  kubernetes_feature_enabled{name=\"LegacyLabel\",stage=\"DEPRECATED\"} 1",
        ],
    );
}

#[test]
fn the_feature_gates_lesson_behaves_as_an_older_release_and_checks_values_against_it() {
    // At 0.2 Stamp is a beta that may be turned off; at 0.4 it would be GA and locked on.
    let (out, _) = run_anywhere_with(
        env!("CARGO_BIN_EXE_feature_gates"),
        &["--feature-gates=Stamp=false", "--emulated-version", "0.2"],
        &[],
    );
    assert_shows(
        &out,
        &[
            "emulated version 0.2; set explicitly: Stamp=false",
            "  KeyCount     PRE-ALPHA  default false         -> false",
            "  Stamp        BETA       default true          -> false  (set)",
            "  annotation lesson.kdev.dev/features: \"LegacyLabel=true,Stamp=false\"",
            "  label      cm-stamper.lesson.kdev.dev/legacy: \"true\"",
            "  kubernetes_feature_enabled{name=\"Stamp\",stage=\"BETA\"} 0",
        ],
    );
    assert!(!out.contains("stamped-by"), "Stamp is off:\n{out}");
    assert!(
        !out.contains("name=\"KeyCount\""),
        "a PRE-ALPHA feature has no metric:\n{out}"
    );
}

#[test]
fn the_feature_gates_lesson_stops_on_a_refused_value_before_it_touches_a_cluster() {
    /// Arguments, environment variables, and what the lesson says on stderr.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            &["--feature-gates=Stamp=false"],
            &[],
            "error: invalid argument \"Stamp=false\" for \"--feature-gates\" flag: cannot set feature gate Stamp to false, feature is locked to true",
        ),
        (
            &["--emulated-version=0.2", "--feature-gates=KeyCount=true"],
            &[],
            "error: invalid argument \"KeyCount=true\" for \"--feature-gates\" flag: cannot set feature gate KeyCount to true, feature is PreAlpha at emulated version 0.2",
        ),
        (
            &[],
            &[("LESSON_FEATURE_LegacyLabel", "yes")],
            "error: invalid LESSON_FEATURE_* variable: invalid value of LegacyLabel=yes",
        ),
        (
            &["--emulated-version=1.0"],
            &[],
            "error: emulation version 1.0 is not between [0.1, 0.4]",
        ),
        (
            &["--emulated-version=0.0"],
            &[],
            "error: emulation version 0.0 is not between [0.1, 0.4]",
        ),
        (&["--verbose"], &[], "error: unknown flag: --verbose"),
    ];
    for (args, envs, message) in cases {
        // No cluster is named: the lesson must stop before it would start the embedded one.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_feature_gates"));
        clear_lesson_features(&mut cmd);
        let output = cmd
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("the lesson starts");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(
            stdout.is_empty(),
            "{args:?} went on before its flags were checked:\n{stdout}"
        );
    }
}

#[test]
fn the_feature_gates_lesson_prints_its_help_text_and_stops() {
    let output = Command::new(env!("CARGO_BIN_EXE_feature_gates"))
        .arg("--help")
        .output()
        .expect("the lesson starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.ends_with(
            "Options are:\nAllAlpha=true|false (ALPHA - default=false)\nAllBeta=true|false (BETA - default=false)\nKeyCount=true|false (ALPHA - default=false)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("The release to emulate, 0.1 to 0.4 (default 0.4)"),
        "{stdout}"
    );
}
