//! Feature gates: named switches that turn behaviour on and off, each at a stage of its life
//! (alpha, beta, GA, deprecated), set from a `--feature-gates=A=true,B=false` flag or the
//! environment: component-base's
//! [`featuregate`](https://kubernetes.io/docs/reference/command-line-tools-reference/feature-gates/),
//! which every Kubernetes component uses.
//!
//! # Examples
//!
//! ```
//! use kdev_core::feature_gate::{FeatureGate, Spec, Version};
//!
//! # fn main() -> Result<(), kdev_core::feature_gate::Error> {
//! let gates = FeatureGate::new();
//! gates.add("ScaleToZero", Spec::alpha())?; // off unless asked for
//! gates.add("StatusConditions", Spec::beta())?; // on unless turned off
//! gates.add("Finalizers", Spec::ga())?; // on, and locked on
//! // A feature's history: what it was in each release of your program.
//! gates.add_versioned(
//!     "ServerSideApply",
//!     [(Version::new(1, 2), Spec::alpha()), (Version::new(1, 4), Spec::beta())],
//! )?;
//! // This program is release 1.4: first the emulation version, then the values.
//! gates.set_emulation_version(Some(Version::new(1, 4)))?;
//!
//! // The value of a `--feature-gates` flag.
//! gates.set("ScaleToZero=true, StatusConditions=false")?;
//! assert!(gates.enabled("ScaleToZero"));
//! assert!(!gates.enabled("StatusConditions"));
//! assert!(gates.enabled("ServerSideApply")); // beta since 1.4
//!
//! // A GA feature is locked to its default.
//! let err = gates.set("Finalizers=false").unwrap_err();
//! assert_eq!(err.to_string(), "cannot set feature gate Finalizers to false, feature is locked to true");
//!
//! // A copy behaving as release 1.3 did: ServerSideApply was alpha then, so off by default.
//! let older = gates.deep_copy();
//! older.set_emulation_version(Some(Version::new(1, 3)))?;
//! assert!(!older.enabled("ServerSideApply"));
//!
//! // The `--feature-gates` help text, as Kubernetes components print it.
//! assert_eq!(gates.known_features()[0], "AllAlpha=true|false (ALPHA - default=false)");
//! # Ok(())
//! # }
//! ```
//!
//! # How a feature's value is decided
//!
//! 1. The spec in effect is the last one whose version is at most the emulation version
//!    ([`FeatureGate::set_emulation_version`]; without one, the newest spec). A feature with
//!    no spec that old is [`Stage::PreAlpha`]: off, and no value can be set for it.
//! 2. A value set explicitly ([`FeatureGate::set`], [`set_from_map`](FeatureGate::set_from_map),
//!    [`set_from_env`](FeatureGate::set_from_env)) wins.
//! 3. Otherwise `AllAlpha=<bool>` / `AllBeta=<bool>` set every alpha / beta feature that is not
//!    locked.
//! 4. Otherwise the spec's default.
//!
//! # Compared with component-base
//!
//! - Setting is all-or-nothing: a call that fails changes nothing, and the same inputs always
//!   give the same first error (component-base keeps a rejected value and fails every later
//!   call with it, and aggregates errors in map order).
//! - Values are checked against the specs of the emulation version when they are set: set the
//!   emulation version first (component-base keeps unchecked values until it is set).
//! - Without an emulation version every feature's newest spec applies (component-base emulates
//!   the binary's own version): set it to your program's release if the histories you add
//!   already hold specs for later releases.
//! - [`FeatureGate::enabled`] on a name that was never added returns `false` and logs an error,
//!   once per name (component-base panics); [`FeatureGate::try_enabled`] returns the error
//!   instead.
//! - `Display` prints the values set, `AllAlpha`/`AllBeta` as given (component-base's `String`
//!   prints them expanded), so that it round-trips through [`FeatureGate::set`].
//! - `kubernetes_feature_enabled` leaves out features that are `PRE-ALPHA` at the emulation
//!   version.
//! - `AllAlpha` / `AllBeta` leave locked features at their default.
//! - There is no flag set to close: features may be added at any time.
//!
//! # kdev's own gates
//!
//! [`client_features`] holds the gates of kdev's client behaviour that client-go has too
//! ([`WATCH_LIST_CLIENT`]), set from `KUBE_FEATURE_<Name>` variables as client-go sets them, so
//! that a kdev controller is switched the way a Go one is.

mod client;

pub use client::{WATCH_LIST_CLIENT, client_features};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The special gate that sets every alpha feature not set explicitly.
pub const ALL_ALPHA: &str = "AllAlpha";
/// The special gate that sets every beta feature not set explicitly.
pub const ALL_BETA: &str = "AllBeta";

/// Why a feature gate refused a feature, a value or a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name no [`FeatureGate::add`] registered.
    #[error("unrecognized feature gate: {name}")]
    Unrecognized {
        /// The name.
        name: String,
    },
    /// `Name` without `=value` in a `--feature-gates` string.
    #[error("missing bool value for {name}")]
    MissingValue {
        /// The name.
        name: String,
    },
    /// A value that is not a boolean (`true`, `false`, `1`, `0`, `t`, `f`, `TRUE`, `False`...).
    #[error("invalid value of {name}={value}, err: strconv.ParseBool: parsing {value:?}: invalid syntax")]
    InvalidValue {
        /// The name.
        name: String,
        /// The value as given.
        value: String,
    },
    /// A value other than the default for a feature locked to its default (GA features are).
    #[error("cannot set feature gate {name} to {value}, feature is locked to {locked_to}")]
    Locked {
        /// The name.
        name: String,
        /// The value asked for.
        value: bool,
        /// The only value the feature may have.
        locked_to: bool,
    },
    /// A feature that did not exist yet at the emulation version.
    #[error("cannot set feature gate {name} to {value}, feature is PreAlpha at emulated version {version}")]
    PreAlpha {
        /// The name.
        name: String,
        /// The value asked for.
        value: bool,
        /// The emulation version.
        version: Version,
    },
    /// [`FeatureGate::add`] again with another spec.
    #[error("feature gate {name:?} with different spec already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// [`FeatureGate::add_versioned`] with no spec at all.
    #[error("feature {name:?} has no spec")]
    NoSpec {
        /// The name.
        name: String,
    },
    /// Versions that do not strictly increase.
    #[error("feature {name:?} lists version transitions in non-increasing order ({version} <= {previous})")]
    VersionOrder {
        /// The name.
        name: String,
        /// The version out of order.
        version: Version,
        /// The version before it.
        previous: Version,
    },
    /// A feature that goes back from GA to beta or alpha, or from beta to alpha.
    #[error("feature {name:?} regresses stability from more stable level to {stage} in {version}")]
    Regresses {
        /// The name.
        name: String,
        /// The less stable stage.
        stage: Stage,
        /// The version it would take effect in.
        version: Version,
    },
    /// A deprecated feature that becomes something else again.
    #[error("deprecated feature {name:?} must not resurrect from its terminal state")]
    Resurrects {
        /// The name.
        name: String,
    },
    /// A feature whose first spec is deprecated at a version that is not `x.0`.
    #[error("feature {name:?} introduced as deprecated must provide a 1.0 entry indicating initial state")]
    IntroducedDeprecated {
        /// The name.
        name: String,
    },
    /// A string that is not a `major.minor` version.
    #[error("invalid version {text:?}: expected major.minor, such as 1.31")]
    InvalidVersion {
        /// The text.
        text: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A feature's stage of life (component-base's `prerelease`).
#[doc(alias = "prerelease")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Not yet introduced at the emulation version: off, and no value can be set for it.
    PreAlpha,
    /// Experimental: off by default, may change or go away.
    Alpha,
    /// Well tested: usually on by default.
    Beta,
    /// Generally available: on, usually locked on; the gate goes away in a later release.
    #[doc(alias = "GA")]
    Ga,
    /// On its way out; the gate goes away in a later release.
    Deprecated,
}

impl Stage {
    /// The name component-base prints: `PRE-ALPHA`, `ALPHA`, `BETA`, `""` (GA), `DEPRECATED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::PreAlpha => "PRE-ALPHA",
            Stage::Alpha => "ALPHA",
            Stage::Beta => "BETA",
            Stage::Ga => "",
            Stage::Deprecated => "DEPRECATED",
        }
    }

    /// Ordering of stability for the stages a feature moves through before deprecation.
    fn stability(self) -> u8 {
        match self {
            Stage::PreAlpha => 0,
            Stage::Alpha => 1,
            Stage::Beta => 2,
            Stage::Ga | Stage::Deprecated => 3,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A feature at one stage: its default and whether it may be changed (component-base's
/// `FeatureSpec`).
#[doc(alias = "FeatureSpec")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The value when nothing sets it.
    pub default: bool,
    /// Whether setting another value is refused.
    pub lock_to_default: bool,
    /// The stage.
    pub stage: Stage,
}

impl Spec {
    /// An alpha feature, off by default.
    pub const fn alpha() -> Self {
        Spec {
            default: false,
            lock_to_default: false,
            stage: Stage::Alpha,
        }
    }

    /// A beta feature, on by default (use [`with_default`](Self::with_default)`(false)` for an
    /// off-by-default beta).
    pub const fn beta() -> Self {
        Spec {
            default: true,
            lock_to_default: false,
            stage: Stage::Beta,
        }
    }

    /// A GA feature, on and locked on.
    pub const fn ga() -> Self {
        Spec {
            default: true,
            lock_to_default: true,
            stage: Stage::Ga,
        }
    }

    /// A deprecated feature, off by default.
    pub const fn deprecated() -> Self {
        Spec {
            default: false,
            lock_to_default: false,
            stage: Stage::Deprecated,
        }
    }

    /// The same spec with another default.
    #[must_use]
    pub const fn with_default(mut self, default: bool) -> Self {
        self.default = default;
        self
    }

    /// The same spec, locked to its default (or not).
    #[must_use]
    pub const fn locked(mut self, locked: bool) -> Self {
        self.lock_to_default = locked;
        self
    }
}

/// A `major.minor` release of your program, at which a feature's spec takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// The major version.
    pub major: u32,
    /// The minor version.
    pub minor: u32,
}

impl Version {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Version { major, minor }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Version {
    type Err = Error;

    /// `1.31` or `v1.31`; a patch part (`1.31.2`) is refused, as component-base refuses it in
    /// a feature's versions.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidVersion { text: text.to_owned() };
        let digits = text.strip_prefix('v').unwrap_or(text);
        let (major, minor) = digits.split_once('.').ok_or_else(invalid)?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u32>().ok())
                .flatten()
                .ok_or_else(invalid)
        };
        Ok(Version::new(number(major)?, number(minor)?))
    }
}

/// One feature as a gate sees it at its emulation version, from [`FeatureGate::features`].
#[doc(alias = "FeatureStatus")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Feature {
    /// The name.
    pub name: String,
    /// The spec in effect.
    pub spec: Spec,
    /// Whether it is on.
    pub enabled: bool,
    /// Whether a value was set explicitly (not `AllAlpha`/`AllBeta`, not the default).
    pub set: bool,
}

/// A value set on a GA or deprecated feature: allowed, but the gate is going away.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The name.
    pub name: String,
    /// The value set.
    pub value: bool,
    /// [`Stage::Ga`] or [`Stage::Deprecated`].
    pub stage: Stage,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = if self.stage == Stage::Ga { "GA" } else { "deprecated" };
        write!(
            f,
            "Setting {stage} feature gate {}={}. It will be removed in a future release.",
            self.name, self.value
        )
    }
}

/// A set of features and their values, shared by every clone (component-base's
/// `MutableFeatureGate`).
///
/// Add every feature at start-up, set the values from the command line or the environment,
/// then ask [`enabled`](Self::enabled) wherever behaviour depends on a feature. Reads take a
/// shared lock and one map lookup; clones are cheap and see the same values.
#[doc(alias = "featuregate")]
#[doc(alias = "MutableFeatureGate")]
#[derive(Clone)]
pub struct FeatureGate {
    state: Arc<RwLock<State>>,
    /// Names [`enabled`](Self::enabled) was asked about and does not know, logged once each.
    reported: Arc<Mutex<HashSet<String>>>,
}

impl Default for FeatureGate {
    /// [`FeatureGate::new`].
    fn default() -> Self {
        FeatureGate::new()
    }
}

#[derive(Default, Clone)]
struct State {
    /// Every feature's specs, oldest version first.
    known: BTreeMap<String, Vec<(Version, Spec)>>,
    /// The values set explicitly, `AllAlpha` and `AllBeta` included.
    raw: BTreeMap<String, bool>,
    /// `raw` resolved at the emulation version, `AllAlpha`/`AllBeta` applied.
    enabled: HashMap<String, bool>,
    emulation: Option<Version>,
}

impl fmt::Debug for FeatureGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.read();
        f.debug_struct("FeatureGate")
            .field("features", &state.known.len())
            .field("set", &state.raw)
            .field("emulation_version", &state.emulation)
            .finish()
    }
}

/// The spec in effect at `version` (`None`: the newest), or PreAlpha when the feature is newer.
fn spec_at(specs: &[(Version, Spec)], version: Option<Version>) -> Spec {
    let pre_alpha = Spec {
        default: false,
        lock_to_default: false,
        stage: Stage::PreAlpha,
    };
    specs
        .iter()
        .rev()
        .find(|(v, _)| version.is_none_or(|at| *v <= at))
        .map_or(pre_alpha, |(_, spec)| *spec)
}

/// A `strconv.ParseBool` value.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl State {
    fn with_specials() -> Self {
        let mut state = State::default();
        for (name, stage) in [(ALL_ALPHA, Stage::Alpha), (ALL_BETA, Stage::Beta)] {
            let spec = Spec {
                default: false,
                lock_to_default: false,
                stage,
            };
            state.known.insert(name.to_owned(), vec![(Version::default(), spec)]);
        }
        state
    }

    /// `raw` resolved at `emulation`, with the warnings its values deserve.
    fn resolve(
        &self,
        raw: &BTreeMap<String, bool>,
        emulation: Option<Version>,
    ) -> Result<(HashMap<String, bool>, Vec<Warning>)> {
        let mut enabled = HashMap::with_capacity(raw.len());
        let mut warnings = Vec::new();
        for (name, &value) in raw {
            let specs = self
                .known
                .get(name)
                .ok_or_else(|| Error::Unrecognized { name: name.clone() })?;
            let spec = spec_at(specs, emulation);
            if spec.lock_to_default && spec.default != value {
                return Err(Error::Locked {
                    name: name.clone(),
                    value,
                    locked_to: spec.default,
                });
            }
            if spec.stage == Stage::PreAlpha {
                return Err(Error::PreAlpha {
                    name: name.clone(),
                    value,
                    version: emulation.unwrap_or_default(),
                });
            }
            if matches!(spec.stage, Stage::Ga | Stage::Deprecated) {
                warnings.push(Warning {
                    name: name.clone(),
                    value,
                    stage: spec.stage,
                });
            }
            enabled.insert(name.clone(), value);
        }
        for (special, stage) in [(ALL_ALPHA, Stage::Alpha), (ALL_BETA, Stage::Beta)] {
            let Some(&value) = raw.get(special) else { continue };
            for (name, specs) in &self.known {
                let spec = spec_at(specs, emulation);
                if name != ALL_ALPHA && name != ALL_BETA && spec.stage == stage && !spec.lock_to_default {
                    enabled.entry(name.clone()).or_insert(value);
                }
            }
        }
        Ok((enabled, warnings))
    }

    fn value(&self, name: &str) -> Option<bool> {
        match self.enabled.get(name) {
            Some(&value) => Some(value),
            None => self.known.get(name).map(|specs| spec_at(specs, self.emulation).default),
        }
    }
}

impl FeatureGate {
    /// A gate that knows only `AllAlpha` and `AllBeta`, at the newest version.
    #[must_use]
    pub fn new() -> Self {
        FeatureGate {
            state: Arc::new(RwLock::new(State::with_specials())),
            reported: Arc::default(),
        }
    }

    /// An independent gate with the same features, values and emulation version (clones share
    /// one gate; component-base's `DeepCopy`). A test can change the copy and leave the
    /// original alone.
    #[must_use]
    pub fn deep_copy(&self) -> FeatureGate {
        FeatureGate {
            state: Arc::new(RwLock::new(self.state.read().clone())),
            reported: Arc::default(),
        }
    }

    /// Forget the value set for `name`, which goes back to its default (or to what
    /// `AllAlpha`/`AllBeta` give it); component-base's `ResetFeatureValueToDefault`.
    ///
    /// # Errors
    ///
    /// [`Error::Unrecognized`] when `name` was never added.
    pub fn reset(&self, name: &str) -> Result<()> {
        let mut state = self.state.write();
        if !state.known.contains_key(name) {
            return Err(Error::Unrecognized { name: name.to_owned() });
        }
        let mut raw = state.raw.clone();
        raw.remove(name);
        let (enabled, _) = state.resolve(&raw, state.emulation)?;
        state.raw = raw;
        state.enabled = enabled;
        Ok(())
    }

    /// Register `name` with one spec for every version.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] when `name` is registered with other specs (adding the same
    /// spec again does nothing).
    pub fn add(&self, name: &str, spec: Spec) -> Result<()> {
        self.add_versioned(name, [(Version::default(), spec)])
    }

    /// Register `name` with its history: the spec that takes effect at each version, oldest
    /// first (component-base's `AddVersioned`). Before its first version a feature is
    /// [`Stage::PreAlpha`].
    ///
    /// # Errors
    ///
    /// - [`Error::AlreadyExists`]: `name` is registered with other specs.
    /// - [`Error::NoSpec`]: `specs` is empty.
    /// - [`Error::VersionOrder`]: versions do not strictly increase.
    /// - [`Error::Regresses`]: GA goes back to beta or alpha, or beta to alpha.
    /// - [`Error::Resurrects`]: a deprecated feature becomes something else.
    /// - [`Error::IntroducedDeprecated`]: the first spec is deprecated at a version that is not
    ///   `x.0` (give an `x.0` spec saying what it was before).
    pub fn add_versioned(&self, name: &str, specs: impl IntoIterator<Item = (Version, Spec)>) -> Result<()> {
        let specs: Vec<(Version, Spec)> = specs.into_iter().collect();
        validate_history(name, &specs)?;
        let mut state = self.state.write();
        match state.known.get(name) {
            Some(existing) if *existing == specs => Ok(()),
            Some(_) => Err(Error::AlreadyExists { name: name.to_owned() }),
            None => {
                state.known.insert(name.to_owned(), specs);
                // A value set through AllAlpha/AllBeta may now cover this feature.
                match state.resolve(&state.raw, state.emulation) {
                    Ok((enabled, _)) => {
                        state.enabled = enabled;
                        Ok(())
                    }
                    Err(e) => {
                        state.known.remove(name);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Set features from a `--feature-gates` value: `Name=bool` pairs separated by commas,
    /// spaces around names and values ignored, the last of a repeated name winning. Values
    /// are Go's booleans: `true`, `false`, `1`, `0`, `t`, `f`, `T`, `F`, `TRUE`, `FALSE`,
    /// `True`, `False`.
    ///
    /// Returns a [`Warning`] for every GA or deprecated feature set, also logged at WARN.
    ///
    /// # Errors
    ///
    /// [`Error::MissingValue`], [`Error::InvalidValue`], and those of
    /// [`set_from_map`](Self::set_from_map). On error nothing changes.
    pub fn set(&self, value: &str) -> Result<Vec<Warning>> {
        let mut values = Vec::new();
        for entry in value.split(',').filter(|e| !e.is_empty()) {
            let (name, value) = match entry.split_once('=') {
                Some((name, value)) => (name.trim(), value.trim()),
                None => {
                    return Err(Error::MissingValue {
                        name: entry.trim().to_owned(),
                    });
                }
            };
            let parsed = parse_bool(value).ok_or_else(|| Error::InvalidValue {
                name: name.to_owned(),
                value: value.to_owned(),
            })?;
            values.push((name.to_owned(), parsed));
        }
        self.set_from_map(values)
    }

    /// Set features from name-value pairs (component-base's `SetFromMap`), on top of what was
    /// set before.
    ///
    /// Returns a [`Warning`] for every GA or deprecated feature set, also logged at WARN.
    ///
    /// # Errors
    ///
    /// The first error in name order, and then nothing changes:
    /// - [`Error::Unrecognized`]: a name that was never added;
    /// - [`Error::Locked`]: a locked feature (GA features are) set to another value than its
    ///   default;
    /// - [`Error::PreAlpha`]: a feature that does not exist yet at the emulation version.
    pub fn set_from_map<S: Into<String>>(&self, values: impl IntoIterator<Item = (S, bool)>) -> Result<Vec<Warning>> {
        let mut state = self.state.write();
        let mut raw = state.raw.clone();
        raw.extend(values.into_iter().map(|(name, value)| (name.into(), value)));
        let (enabled, warnings) = state.resolve(&raw, state.emulation)?;
        state.raw = raw;
        state.enabled = enabled;
        drop(state);
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        Ok(warnings)
    }

    /// Set features from environment variables named `prefix` + the feature's name, as
    /// client-go reads `KUBE_FEATURE_<Name>` (`set_from_env("KUBE_FEATURE_")`). Only added
    /// features and `AllAlpha`/`AllBeta` are looked up, so a misspelt variable
    /// (`KUBE_FEATURE_Keycount`) is not read and not reported; values are Go's booleans, not
    /// trimmed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a value that is not a boolean (client-go logs it and keeps
    /// the default), and those of [`set_from_map`](Self::set_from_map). On error nothing
    /// changes.
    pub fn set_from_env(&self, prefix: &str) -> Result<Vec<Warning>> {
        self.set_from_lookup(prefix, |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    fn set_from_lookup(&self, prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<Warning>> {
        let names: Vec<String> = self.state.read().known.keys().cloned().collect();
        let mut values = Vec::new();
        for name in names {
            let Some(value) = lookup(&format!("{prefix}{name}")) else {
                continue;
            };
            let parsed = parse_bool(&value).ok_or_else(|| Error::InvalidValue {
                name: name.clone(),
                value,
            })?;
            values.push((name, parsed));
        }
        self.set_from_map(values)
    }

    /// Behave as release `version` did: each feature takes the spec in effect then (`None`:
    /// the newest spec). Call it before setting values, which are checked against the specs in
    /// effect when they are set; values set earlier are checked again.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] or [`Error::PreAlpha`] when a value set earlier is not allowed at
    /// `version`; then nothing changes.
    pub fn set_emulation_version(&self, version: Option<Version>) -> Result<()> {
        let mut state = self.state.write();
        if state.emulation == version {
            return Ok(());
        }
        let (enabled, _) = state.resolve(&state.raw, version)?;
        state.enabled = enabled;
        state.emulation = version;
        Ok(())
    }

    /// The emulation version (`None`: the newest).
    #[must_use]
    pub fn emulation_version(&self) -> Option<Version> {
        self.state.read().emulation
    }

    /// Whether `name` is on. A name that was never added is off, and logged at ERROR as the
    /// programming error it is (component-base panics); see [`try_enabled`](Self::try_enabled).
    #[must_use]
    pub fn enabled(&self, name: &str) -> bool {
        match self.try_enabled(name) {
            Ok(value) => value,
            Err(error) => {
                if self.reported.lock().insert(name.to_owned()) {
                    tracing::error!(%error, "feature {name:?} is not registered in the feature gate: it is off");
                }
                false
            }
        }
    }

    /// Whether `name` is on.
    ///
    /// # Errors
    ///
    /// [`Error::Unrecognized`] when `name` was never added.
    pub fn try_enabled(&self, name: &str) -> Result<bool> {
        self.state
            .read()
            .value(name)
            .ok_or_else(|| Error::Unrecognized { name: name.to_owned() })
    }

    /// The spec of `name` in effect at the emulation version.
    #[must_use]
    pub fn spec(&self, name: &str) -> Option<Spec> {
        let state = self.state.read();
        state.known.get(name).map(|specs| spec_at(specs, state.emulation))
    }

    /// Every feature (not `AllAlpha` and `AllBeta`) at the emulation version, by name,
    /// including features not yet introduced ([`Stage::PreAlpha`]), which the help text and
    /// the metric leave out.
    #[must_use]
    pub fn features(&self) -> Vec<Feature> {
        let state = self.state.read();
        state
            .known
            .iter()
            .filter(|(name, _)| *name != ALL_ALPHA && *name != ALL_BETA)
            .map(|(name, specs)| Feature {
                name: name.clone(),
                spec: spec_at(specs, state.emulation),
                enabled: state.value(name).unwrap_or(false),
                set: state.raw.contains_key(name),
            })
            .collect()
    }

    /// The lines of a `--feature-gates` help text, sorted: `Name=true|false (ALPHA -
    /// default=false)` for every alpha and beta feature and for `AllAlpha` and `AllBeta`;
    /// GA, deprecated and not-yet-introduced features are left out, as Kubernetes components
    /// leave them out.
    #[must_use]
    pub fn known_features(&self) -> Vec<String> {
        let state = self.state.read();
        let mut lines: Vec<String> = state
            .known
            .iter()
            .map(|(name, specs)| (name, spec_at(specs, state.emulation)))
            .filter(|(_, spec)| matches!(spec.stage, Stage::Alpha | Stage::Beta))
            .map(|(name, spec)| format!("{name}=true|false ({} - default={})", spec.stage, spec.default))
            .collect();
        lines.sort();
        lines
    }

    /// Publish `kubernetes_feature_enabled{name, stage}`, 1 or 0 for every feature at scrape
    /// time, as Kubernetes components do (e.g. into [`Manager::registry`](crate::manager::Manager::registry)).
    ///
    /// # Caveats
    ///
    /// Register a gate once per registry: twice publishes the family twice, which scrapers
    /// refuse.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(FeatureMetrics { gate: self.clone() }));
    }
}

/// `Name=bool` for every value set (`AllAlpha`/`AllBeta` as given), sorted by name: a
/// `--feature-gates` value that gives this gate's values.
impl fmt::Display for FeatureGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.read();
        for (i, (name, value)) in state.raw.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

fn validate_history(name: &str, specs: &[(Version, Spec)]) -> Result<()> {
    let Some((first_version, first)) = specs.first() else {
        return Err(Error::NoSpec { name: name.to_owned() });
    };
    if first.stage == Stage::Deprecated && first_version.minor != 0 {
        return Err(Error::IntroducedDeprecated { name: name.to_owned() });
    }
    for pair in specs.windows(2) {
        let ((previous, before), (version, after)) = (pair[0], pair[1]);
        if version <= previous {
            return Err(Error::VersionOrder {
                name: name.to_owned(),
                version,
                previous,
            });
        }
        if before.stage == Stage::Deprecated && after.stage != Stage::Deprecated {
            return Err(Error::Resurrects { name: name.to_owned() });
        }
        if after.stage != Stage::Deprecated && after.stage.stability() < before.stage.stability() {
            return Err(Error::Regresses {
                name: name.to_owned(),
                stage: after.stage,
                version,
            });
        }
    }
    Ok(())
}

#[derive(Debug)]
struct FeatureMetrics {
    gate: FeatureGate,
}

impl Collector for FeatureMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "kubernetes_feature_enabled",
            "This metric records the data about the stage and enablement of a k8s feature.",
            None,
            gauge.metric_type(),
        )?;
        let readings: Vec<(String, Spec, bool)> = {
            let state = self.gate.state.read();
            state
                .known
                .iter()
                .map(|(name, specs)| {
                    (
                        name.clone(),
                        spec_at(specs, state.emulation),
                        state.value(name).unwrap_or(false),
                    )
                })
                .filter(|(_, spec, _)| spec.stage != Stage::PreAlpha)
                .collect()
        };
        for (name, spec, enabled) in readings {
            let labels = [("name", name.as_str()), ("stage", spec.stage.as_str())];
            ConstGauge::new(i64::from(enabled)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> FeatureGate {
        let gates = FeatureGate::new();
        gates.add("A", Spec::alpha()).unwrap();
        gates.add("B", Spec::beta()).unwrap();
        gates.add("OffBeta", Spec::beta().with_default(false)).unwrap();
        gates.add("G", Spec::ga()).unwrap();
        gates.add("D", Spec::deprecated()).unwrap();
        gates.add("LockedAlpha", Spec::alpha().locked(true)).unwrap();
        gates
    }

    #[test]
    fn defaults_apply_until_a_value_is_set() {
        let gates = gate();
        assert!(!gates.enabled("A"));
        assert!(gates.enabled("B"));
        assert!(!gates.enabled("OffBeta"));
        assert!(gates.enabled("G"));
        assert!(!gates.enabled("D"));
        gates.set("A=true,B=false").unwrap();
        assert!(gates.enabled("A"));
        assert!(!gates.enabled("B"));
        assert_eq!(gates.to_string(), "A=true,B=false");
    }

    #[test]
    fn set_parses_go_booleans_trims_spaces_skips_empty_entries_and_keeps_the_last_value() {
        let gates = gate();
        gates.set(" A = T ,,B=0,").unwrap();
        assert!(gates.enabled("A"));
        assert!(!gates.enabled("B"));
        gates.set("A=FALSE,A=1").unwrap();
        assert!(gates.enabled("A"));
        for (text, value) in [
            ("1", true),
            ("t", true),
            ("True", true),
            ("0", false),
            ("f", false),
            ("False", false),
        ] {
            gates.set(&format!("OffBeta={text}")).unwrap();
            assert_eq!(gates.enabled("OffBeta"), value, "{text}");
        }
    }

    #[test]
    fn malformed_values_are_typed_errors_with_component_base_messages() {
        let gates = gate();
        let err = gates.set("A").unwrap_err();
        assert_eq!(err.to_string(), "missing bool value for A");
        let err = gates.set("A=yes").unwrap_err();
        assert_eq!(
            err,
            Error::InvalidValue {
                name: "A".into(),
                value: "yes".into()
            }
        );
        assert_eq!(
            err.to_string(),
            r#"invalid value of A=yes, err: strconv.ParseBool: parsing "yes": invalid syntax"#
        );
        let err = gates.set("Nope=true").unwrap_err();
        assert_eq!(err.to_string(), "unrecognized feature gate: Nope");
        let err = gates.set("G=false").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot set feature gate G to false, feature is locked to true"
        );
    }

    #[test]
    fn a_failed_set_changes_nothing() {
        let gates = gate();
        gates.set("A=true").unwrap();
        assert!(gates.set("B=false,G=false").is_err());
        assert!(gates.enabled("B"), "B kept its value");
        assert!(gates.set("B=false,Nope=true").is_err());
        assert!(gates.enabled("B"));
        // The rejected values were not kept: the next call succeeds.
        gates.set("B=false").unwrap();
        assert!(!gates.enabled("B"));
        assert!(gates.enabled("A"));
    }

    #[test]
    fn setting_ga_or_deprecated_features_warns() {
        let gates = gate();
        let warnings = gates.set("G=true,D=true,A=true").unwrap();
        let texts: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "Setting deprecated feature gate D=true. It will be removed in a future release.",
                "Setting GA feature gate G=true. It will be removed in a future release.",
            ]
        );
        assert!(gates.enabled("D"));
    }

    #[test]
    fn all_alpha_and_all_beta_set_unset_unlocked_features_of_their_stage_and_explicit_values_win() {
        let gates = gate();
        gates.set("A=false,AllAlpha=true").unwrap();
        assert!(!gates.enabled("A"), "explicit wins");
        assert!(!gates.enabled("LockedAlpha"), "locked keeps its default");
        gates.add("A2", Spec::alpha()).unwrap();
        assert!(gates.enabled("A2"), "a feature added later is covered too");
        gates.set("AllBeta=false").unwrap();
        assert!(!gates.enabled("B"));
        assert!(!gates.enabled("OffBeta"));
        assert!(gates.enabled("G"));
        gates.set("AllBeta=true,AllAlpha=false").unwrap();
        assert!(gates.enabled("OffBeta"));
        assert!(
            !gates.enabled("A2"),
            "AllAlpha=false after AllAlpha=true turns them off again"
        );
    }

    #[test]
    fn versioned_features_follow_the_emulation_version() {
        let gates = FeatureGate::new();
        let history = [
            (Version::new(1, 2), Spec::alpha()),
            (Version::new(1, 4), Spec::beta()),
            (Version::new(1, 6), Spec::ga()),
        ];
        gates.add_versioned("F", history).unwrap();
        assert!(gates.enabled("F"));
        assert_eq!(gates.spec("F").unwrap().stage, Stage::Ga);
        gates.set_emulation_version(Some(Version::new(1, 5))).unwrap();
        assert_eq!(gates.spec("F").unwrap().stage, Stage::Beta);
        gates.set_emulation_version(Some(Version::new(1, 1))).unwrap();
        assert_eq!(gates.spec("F").unwrap().stage, Stage::PreAlpha);
        assert!(!gates.enabled("F"));
        assert!(gates.known_features().iter().all(|l| !l.starts_with("F=")));
        let err = gates.set("F=true").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot set feature gate F to true, feature is PreAlpha at emulated version 1.1"
        );
        gates.set_emulation_version(Some(Version::new(1, 3))).unwrap();
        gates.set("F=true").unwrap();
        assert!(gates.enabled("F"));
        // At 1.7, F is GA and locked on: the value set is still allowed, `false` would not be.
        gates.set("F=false").unwrap();
        let err = gates.set_emulation_version(Some(Version::new(1, 7))).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert_eq!(gates.emulation_version(), Some(Version::new(1, 3)), "unchanged");
    }

    #[test]
    fn histories_that_go_backwards_are_refused() {
        let gates = FeatureGate::new();
        let v = Version::new;
        let cases: [(&[(Version, Spec)], &str); 5] = [
            (&[], "has no spec"),
            (
                &[(v(1, 2), Spec::alpha()), (v(1, 2), Spec::beta())],
                "non-increasing order (1.2 <= 1.2)",
            ),
            (
                &[(v(1, 2), Spec::ga()), (v(1, 3), Spec::beta())],
                "regresses stability from more stable level to BETA in 1.3",
            ),
            (
                &[(v(1, 0), Spec::deprecated()), (v(1, 3), Spec::beta())],
                "must not resurrect",
            ),
            (&[(v(1, 3), Spec::deprecated())], "must provide a 1.0 entry"),
        ];
        for (history, message) in cases {
            let err = gates.add_versioned("X", history.iter().copied()).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
        gates
            .add_versioned("X", [(v(1, 0), Spec::beta()), (v(1, 3), Spec::deprecated())])
            .unwrap();
    }

    #[test]
    fn adding_again_is_a_no_op_with_the_same_spec_and_an_error_with_another() {
        let gates = gate();
        gates.add("A", Spec::alpha()).unwrap();
        let err = gates.add("A", Spec::beta()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"feature gate "A" with different spec already exists"#
        );
    }

    #[test]
    fn an_unknown_feature_is_off_and_an_error_for_try_enabled() {
        let gates = gate();
        assert!(!gates.enabled("Nope"));
        assert_eq!(
            gates.try_enabled("Nope"),
            Err(Error::Unrecognized { name: "Nope".into() })
        );
    }

    #[test]
    fn known_features_lists_alpha_and_beta_as_component_base_prints_them() {
        assert_eq!(
            gate().known_features(),
            [
                "A=true|false (ALPHA - default=false)",
                "AllAlpha=true|false (ALPHA - default=false)",
                "AllBeta=true|false (BETA - default=false)",
                "B=true|false (BETA - default=true)",
                "LockedAlpha=true|false (ALPHA - default=false)",
                "OffBeta=true|false (BETA - default=false)",
            ]
        );
    }

    #[test]
    fn versions_parse_as_major_minor() {
        assert_eq!("1.31".parse::<Version>().unwrap(), Version::new(1, 31));
        assert_eq!("v1.31".parse::<Version>().unwrap(), Version::new(1, 31));
        for bad in ["1.31.2", "1", "", "1.", ".1", "a.b", "1.+2"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }

    #[test]
    fn set_from_env_reads_prefixed_variables_of_known_features() {
        let gates = gate();
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        gates
            .set_from_lookup(
                "KUBE_FEATURE_",
                env(&[
                    ("KUBE_FEATURE_A", "true"),
                    ("KUBE_FEATURE_Nope", "true"),
                    ("A", "false"),
                ]),
            )
            .unwrap();
        assert!(gates.enabled("A"));
        let err = gates
            .set_from_lookup("KUBE_FEATURE_", env(&[("KUBE_FEATURE_B", " false")]))
            .unwrap_err();
        assert_eq!(
            err,
            Error::InvalidValue {
                name: "B".into(),
                value: " false".into()
            },
            "values are not trimmed"
        );
        assert!(gates.enabled("B"));
    }

    #[test]
    fn default_is_new_with_all_alpha_and_all_beta() {
        let gates = FeatureGate::default();
        gates.add("A", Spec::alpha()).unwrap();
        gates.set("AllAlpha=true").unwrap();
        assert!(gates.enabled("A"));
        assert_eq!(gates.known_features().len(), 3);
    }

    #[test]
    fn a_deep_copy_is_independent_and_reset_forgets_a_value() {
        let gates = gate();
        gates.set("A=true,AllBeta=false").unwrap();
        let copy = gates.deep_copy();
        copy.set("A=false").unwrap();
        assert!(gates.enabled("A"), "the original keeps its value");
        assert!(!copy.enabled("A"));
        assert!(!copy.enabled("B"), "the copy keeps the values it was made with");
        let clone = gates.clone();
        clone.reset("A").unwrap();
        assert!(!gates.enabled("A"), "clones share one gate; A is back to its default");
        gates.reset("AllBeta").unwrap();
        assert!(gates.enabled("B"));
        assert_eq!(gates.reset("Nope"), Err(Error::Unrecognized { name: "Nope".into() }));
    }

    #[test]
    fn display_prints_the_values_set_and_round_trips_through_set() {
        let gates = gate();
        gates.set("AllAlpha=true,B=false").unwrap();
        assert_eq!(gates.to_string(), "AllAlpha=true,B=false");
        let again = gate();
        again.set(&gates.to_string()).unwrap();
        assert_eq!(again.features(), gates.features());
    }

    #[test]
    fn metrics_publish_every_feature_with_its_stage() {
        let gates = gate();
        gates.set("A=true").unwrap();
        let mut registry = Registry::default();
        gates.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"kubernetes_feature_enabled{name="A",stage="ALPHA"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kubernetes_feature_enabled{name="G",stage=""} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kubernetes_feature_enabled{name="D",stage="DEPRECATED"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kubernetes_feature_enabled{name="AllAlpha",stage="ALPHA"} 0"#),
            "{text}"
        );
    }
}
