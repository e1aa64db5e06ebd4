//! Lesson 21: feature gates. A small operator, release 0.4 of `cm-stamper`, gates three of its
//! behaviours: `Stamp` (GA), `KeyCount` (alpha) and `LegacyLabel` (deprecated). The lesson prints
//! the `--feature-gates` help text, takes the gates' values from the command line and the
//! environment, shows what a gate refuses, what `AllAlpha` and an emulated version change, then
//! runs the operator on the API server with those values and shows `kubernetes_feature_enabled`.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server):
//!
//! ```sh
//! cargo run -p kdev-examples --bin feature_gates
//! cargo run -p kdev-examples --bin feature_gates -- --feature-gates=KeyCount=true,LegacyLabel=true
//! LESSON_FEATURE_KeyCount=true cargo run -p kdev-examples --bin feature_gates
//! cargo run -p kdev-examples --bin feature_gates -- --emulated-version=0.2
//! cargo run -p kdev-examples --bin feature_gates -- --feature-gates=Stamp=false   # refused: exit 2
//! ```
//!
//! The page that goes with it: `docs/feature_gates.md`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev::controller::{self, Action, Context, Reconciler};
use kdev::feature_gate::{FeatureGate, Spec, Stage, Version};
use kdev::kube_client::api::PostParams;
use kdev::kube_client::{Api, Client};
use kdev::kube_core::ResourceExt;
use kdev::manager::Manager;
use kdev::object;
use kdev_examples::{BoxError, connect, create_namespace, delete_namespace, log_to_stderr, wait};

/// The operator's features. A feature's name is part of its command-line interface: keep it.
const STAMP: &str = "Stamp";
const KEY_COUNT: &str = "KeyCount";
const LEGACY_LABEL: &str = "LegacyLabel";

/// The release of the operator this program is.
const RELEASE: Version = Version::new(0, 4);
/// Where `LESSON_FEATURE_<Name>=true` sets a feature, as client-go reads `KUBE_FEATURE_<Name>`.
const ENV_PREFIX: &str = "LESSON_FEATURE_";

const MANAGER: &str = "cm-stamper";
/// Only ConfigMaps with this label are the operator's business.
const OPT_IN: &str = "lesson.kdev.dev/stamp";
const STAMPED_BY: &str = "lesson.kdev.dev/stamped-by";
const KEYS: &str = "lesson.kdev.dev/keys";
const FEATURES: &str = "lesson.kdev.dev/features";
const LEGACY: &str = "cm-stamper.lesson.kdev.dev/legacy";

/// The operator's gates and their history, one spec per release that changed them.
fn operator_gates() -> FeatureGate {
    let v = Version::new;
    let gates = FeatureGate::new();
    let histories = [
        // Introduced as alpha in 0.1, on by default from 0.2, GA (locked on) from 0.3.
        (
            STAMP,
            vec![(v(0, 1), Spec::alpha()), (v(0, 2), Spec::beta()), (v(0, 3), Spec::ga())],
        ),
        // New in 0.3, still alpha.
        (KEY_COUNT, vec![(v(0, 3), Spec::alpha())]),
        // The old behaviour, on by default until 0.4 deprecated it and turned it off. Its
        // history starts at 0.0 (before the gate existed, the behaviour was simply on): a
        // deprecated stage needs an earlier entry saying what the feature was.
        (
            LEGACY_LABEL,
            vec![(v(0, 0), Spec::beta()), (v(0, 4), Spec::deprecated())],
        ),
    ];
    for (name, history) in histories {
        gates
            .add_versioned(name, history)
            .expect("the histories above go forward");
    }
    // Specs for later releases, when there are any, stay dormant in this one.
    gates.set_emulation_version(Some(RELEASE)).expect("nothing is set yet");
    gates
}

/// `--feature-gates=<value>` and `--emulated-version=<major.minor>`, in either `--flag=value`
/// or `--flag value` form.
#[derive(Debug, Default)]
struct Flags {
    feature_gates: Option<String>,
    emulated_version: Option<String>,
    help: bool,
}

fn parse_flags(args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            flags.help = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let slot = match name.as_str() {
            "--feature-gates" => &mut flags.feature_gates,
            "--emulated-version" => &mut flags.emulated_version,
            _ => return Err(format!("unknown flag: {arg}")),
        };
        *slot = Some(match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| format!("flag needs an argument: {name}"))?,
        });
    }
    Ok(flags)
}

/// The oldest release this one can emulate: three minor releases back, as kube-apiserver
/// 1.31 to 1.33 allowed (the flag's help gives a component's range).
const OLDEST_EMULATED: Version = Version::new(RELEASE.major, RELEASE.minor.saturating_sub(3));

/// The gates as the operator runs with them, and what setting them said.
struct Configured {
    gates: FeatureGate,
    /// The values the `LESSON_FEATURE_*` variables set, as a `--feature-gates` value.
    from_env: String,
    warnings: Vec<String>,
}

/// The emulated version first (default: this release), then the feature gates, as Kubernetes
/// components apply them; the gates from `LESSON_FEATURE_<Name>` variables (client-go's way,
/// `KUBE_FEATURE_<Name>`, for a program of your own), then from `--feature-gates`, which wins.
/// A refusal is a flag error, and the program stops before it prints or touches anything.
fn configure(flags: &Flags) -> Result<Configured, String> {
    let gates = operator_gates();
    let version = match &flags.emulated_version {
        Some(text) => {
            let version: Version = text
                .parse()
                .map_err(|e| format!("invalid argument {text:?} for \"--emulated-version\" flag: {e}"))?;
            if version > RELEASE || version < OLDEST_EMULATED {
                return Err(format!(
                    "emulation version {version} is not between [{OLDEST_EMULATED}, {RELEASE}]"
                ));
            }
            version
        }
        None => RELEASE,
    };
    gates.set_emulation_version(Some(version)).expect("nothing is set yet");
    let mut warnings: Vec<String> = gates
        .set_from_env(ENV_PREFIX)
        .map_err(|e| format!("invalid {ENV_PREFIX}* variable: {e}"))?
        .iter()
        .map(ToString::to_string)
        .collect();
    let from_env = gates.to_string();
    if let Some(value) = &flags.feature_gates {
        let more = gates
            .set(value)
            .map_err(|e| format!("invalid argument {value:?} for \"--feature-gates\" flag: {e}"))?;
        warnings.extend(more.iter().map(ToString::to_string));
    }
    Ok(Configured {
        gates,
        from_env,
        warnings,
    })
}

fn print_help() {
    println!("Usage: feature_gates [--feature-gates=<Name=bool,...>] [--emulated-version=<major.minor>]\n");
    println!(
        "      --emulated-version string   The release to emulate, {OLDEST_EMULATED} to {RELEASE} (default {RELEASE})"
    );
    println!(
        "      --feature-gates mapStringBool  A set of key=value pairs that describe feature gates for alpha/experimental features. Options are:"
    );
    for line in operator_gates().known_features() {
        println!("{line}");
    }
}

fn print_features(gates: &FeatureGate) {
    for f in gates.features() {
        let lock = if f.spec.lock_to_default { ", locked" } else { "" };
        let default = format!("default {}{lock}", f.spec.default);
        let set = if f.set { "  (set)" } else { "" };
        println!(
            "  {:<12} {:<10} {default:<21} -> {}{set}",
            f.name,
            stage_name(f.spec.stage),
            f.enabled
        );
    }
}

/// component-base prints GA as an empty stage; the lesson says GA.
fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Ga => "GA",
        stage => stage.as_str(),
    }
}

/// Every feature's value, as the operator records it on what it reconciles.
fn summary(gates: &FeatureGate) -> String {
    let values: Vec<String> = gates
        .features()
        .iter()
        .filter(|f| f.spec.stage != Stage::PreAlpha) // not in this release
        .map(|f| format!("{}={}", f.name, f.enabled))
        .collect();
    values.join(",")
}

/// Stamps opted-in ConfigMaps; what it writes depends on the gates.
struct Stamper {
    gates: FeatureGate,
}

impl Reconciler<ConfigMap> for Stamper {
    async fn reconcile(&self, cm: Arc<ConfigMap>, ctx: Context) -> controller::Result {
        if cm.labels().get(OPT_IN).map(String::as_str) != Some("true") {
            return Ok(Action::done());
        }
        let ns = cm.namespace().unwrap_or_default();
        let api: Api<ConfigMap> = Api::namespaced(ctx.client().clone(), &ns);
        // Server-side apply of everything this operator has an opinion about: what a gate
        // turns off is left out, and the API server removes what we applied before.
        let mut intent = ConfigMap::default();
        intent.metadata.name = Some(cm.name_any());
        let mut annotations = BTreeMap::from([(FEATURES.to_owned(), summary(&self.gates))]);
        if self.gates.enabled(STAMP) {
            annotations.insert(STAMPED_BY.to_owned(), MANAGER.to_owned());
        }
        if self.gates.enabled(KEY_COUNT) {
            let keys = cm.data.as_ref().map_or(0, BTreeMap::len) + cm.binary_data.as_ref().map_or(0, BTreeMap::len);
            annotations.insert(KEYS.to_owned(), keys.to_string());
        }
        intent.metadata.annotations = Some(annotations);
        if self.gates.enabled(LEGACY_LABEL) {
            intent.metadata.labels = Some(BTreeMap::from([(LEGACY.to_owned(), "true".to_owned())]));
        }
        object::apply(&api, &intent, MANAGER, true).await?;
        Ok(Action::done())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    log_to_stderr("off");
    // Flags first: a refused value stops the program before it prints anything else.
    let configured = match parse_flags(std::env::args().skip(1)).and_then(|flags| {
        if flags.help {
            print_help();
            std::process::exit(0);
        }
        configure(&flags)
    }) {
        Ok(configured) => configured,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };

    println!("== 1. the gates of {MANAGER} {RELEASE} (its --feature-gates help text; --help prints it too)");
    println!(
        "--feature-gates mapStringBool  A set of key=value pairs that describe feature gates for alpha/experimental features. Options are:"
    );
    for line in operator_gates().known_features() {
        println!("  {line}");
    }
    println!("(GA and deprecated features are left out: their gates are going away)");

    println!("\n== 2. what a gate refuses (each on a fresh gate; a refused call changes nothing)");
    for value in ["Nope=true", "Stamp=false", "KeyCount=maybe", "KeyCount"] {
        let gates = operator_gates();
        match gates.set(value) {
            Ok(_) => println!("  {value:<16} accepted"),
            Err(e) => println!("  {value:<16} refused: {e}"),
        }
    }
    let gates = operator_gates();
    for warning in gates.set("Stamp=true,LegacyLabel=true")? {
        println!("  accepted with a warning: {warning}");
    }

    println!("\n== 3. AllAlpha=true turns on every alpha feature not set explicitly");
    let gates = operator_gates();
    gates.set("AllAlpha=true")?;
    println!(
        "  KeyCount (alpha): {}   Stamp (GA): {}",
        gates.enabled(KEY_COUNT),
        gates.enabled(STAMP)
    );

    println!("\n== 4. an emulated version: behave as an older release did");
    for minor in 1..=RELEASE.minor {
        let gates = operator_gates();
        gates.set_emulation_version(Some(Version::new(RELEASE.major, minor)))?;
        let row: Vec<String> = gates
            .features()
            .iter()
            .map(|f| {
                format!(
                    "{:<30}",
                    format!("{} {} {}", f.name, stage_name(f.spec.stage), f.enabled)
                )
            })
            .collect();
        println!("  {}.{minor}: {}", RELEASE.major, row.concat().trim_end());
    }
    let gates = operator_gates();
    gates.set_emulation_version(Some(Version::new(0, 1)))?;
    match gates.set("KeyCount=true") {
        Ok(_) => println!("  at 0.1, KeyCount=true accepted"),
        Err(e) => println!("  at 0.1, KeyCount=true refused: {e}"),
    }

    println!("\n== 5. this run's gates: --emulated-version, then {ENV_PREFIX}<Name> variables, then --feature-gates");
    let Configured {
        gates,
        from_env,
        warnings,
    } = configured;
    if !from_env.is_empty() {
        println!("from {ENV_PREFIX}* variables: {from_env}");
    }
    for warning in warnings {
        println!("warning: {warning}");
    }
    let version = match gates.emulation_version() {
        Some(v) if v == RELEASE => format!("{v} (this release)"),
        Some(v) => v.to_string(),
        None => "newest".to_owned(),
    };
    let set = gates.to_string();
    let set = if set.is_empty() { "nothing".to_owned() } else { set };
    println!("emulated version {version}; set explicitly: {set}");
    print_features(&gates);

    let (client, _env) = connect().await?;
    let ns = create_namespace(&client, "feature-gates").await?;
    let outcome = run_operator(&client, &ns, &gates).await;
    delete_namespace(&client, &ns).await?;
    outcome?;
    println!("lesson complete");
    Ok(())
}

async fn run_operator(client: &Client, ns: &str, gates: &FeatureGate) -> Result<(), BoxError> {
    println!("\n== 6. the operator at work with these gates");
    let manager = Manager::builder(client.clone())
        .graceful_shutdown_timeout(Duration::from_secs(10))
        .build();
    gates.register_metrics(&mut manager.registry());
    manager
        .controller_for(Api::<ConfigMap>::namespaced(client.clone(), ns))
        .named(MANAGER)
        .complete(Stamper { gates: gates.clone() })?;
    let running = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run().await }
    });

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("settings".into());
    cm.metadata.labels = Some(BTreeMap::from([(OPT_IN.to_owned(), "true".to_owned())]));
    cm.data = Some(BTreeMap::from([
        ("mode".to_owned(), "fast".to_owned()),
        ("region".to_owned(), "eu".to_owned()),
    ]));
    api.create(&PostParams::default(), &cm).await?;
    println!("created ConfigMap settings (2 keys, labelled {OPT_IN}=true)");
    wait("the operator to stamp settings", || async {
        Ok(api.get("settings").await?.annotations().contains_key(FEATURES))
    })
    .await?;
    let cm = api.get("settings").await?;
    println!("settings, reconciled:");
    for (key, value) in cm
        .annotations()
        .iter()
        .filter(|(k, _)| k.starts_with("lesson.kdev.dev/"))
    {
        println!("  annotation {key}: {value:?}");
    }
    for (key, value) in cm.labels() {
        println!("  label      {key}: {value:?}");
    }

    println!("\n== 7. /metrics: kubernetes_feature_enabled, one line a feature");
    let mut metrics = String::new();
    kdev::prometheus_client::encoding::text::encode(&mut metrics, &manager.registry())?;
    let mut lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kubernetes_feature_enabled{"))
        .collect();
    lines.sort_unstable();
    for line in lines {
        println!("  {line}");
    }
    manager.shutdown_token().cancel();
    running.await??;
    Ok(())
}
