//! The README's configuration table is a contract with operators: every variable a binary reads,
//! which binaries read it, and its default. This test holds it to the code.
//!
//! Each binary's variables are derived from its configuration structs, not listed by hand: serde's
//! derive hands a struct's field names to `deserialize_struct`, and `envy` matches them,
//! upper-cased, against the environment. So a variable added, renamed or dropped in a struct and
//! not in the README (or the other way round) fails here, as does a default that differs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use mailtrail_api::config::ApiEnv;
use mailtrail_cli::CliEnv;
use mailtrail_receiver::config::ReceiverEnv;
use mailtrail_telemetry::LogEnv;
use mailtrail_worker::config::WorkerEnv;
use serde::de::{self, Deserialize, Deserializer, Visitor};

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));

/// Variables read outside the typed structs, with the binaries that read them.
const OUTSIDE_THE_STRUCTS: &[(&str, &[Binary])] = &[
    // tracing-subscriber's `EnvFilter` reads it in `mailtrail_telemetry::init_logging`, which the
    // two services call first thing; the CLI sets up no logging.
    ("RUST_LOG", &[Binary::Receiver, Binary::Worker, Binary::Api]),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Binary {
    Receiver,
    Worker,
    Api,
    Cli,
}

impl Binary {
    const ALL: [Self; 4] = [Self::Receiver, Self::Worker, Self::Api, Self::Cli];

    /// The binary's variables, from the field names of the structs it reads the environment into.
    fn variables_in_code(self) -> BTreeSet<String> {
        let structs: &[&[&str]] = match self {
            Self::Receiver => &[field_names::<ReceiverEnv>(), field_names::<LogEnv>()],
            Self::Worker => &[field_names::<WorkerEnv>(), field_names::<LogEnv>()],
            Self::Api => &[field_names::<ApiEnv>(), field_names::<LogEnv>()],
            Self::Cli => &[field_names::<CliEnv>()],
        };
        let outside = OUTSIDE_THE_STRUCTS
            .iter()
            .filter(|(_, readers)| readers.contains(&self))
            .map(|(name, _)| name.to_string());
        structs
            .iter()
            .flat_map(|fields| fields.iter().map(|field| field.to_uppercase()))
            .chain(outside)
            .collect()
    }

    /// Reads the environment `vars` the way the binary does and prints what it read (secrets
    /// print redacted, so they compare equal whatever their value).
    fn read(self, vars: &[(String, String)]) -> Result<String, envy::Error> {
        let vars = || vars.iter().cloned();
        Ok(match self {
            Self::Receiver => format!(
                "{:?} {:?}",
                envy::from_iter::<_, ReceiverEnv>(vars())?,
                envy::from_iter::<_, LogEnv>(vars())?
            ),
            Self::Worker => format!(
                "{:?} {:?}",
                envy::from_iter::<_, WorkerEnv>(vars())?,
                envy::from_iter::<_, LogEnv>(vars())?
            ),
            Self::Api => format!(
                "{:?} {:?}",
                envy::from_iter::<_, ApiEnv>(vars())?,
                envy::from_iter::<_, LogEnv>(vars())?
            ),
            Self::Cli => format!("{:?}", envy::from_iter::<_, CliEnv>(vars())?),
        })
    }
}

/// One row of the README's table.
#[derive(Debug)]
struct Row {
    variable: String,
    used_by: Vec<Binary>,
    /// The default for each user, when the README states one in backticks.
    defaults: BTreeMap<Binary, String>,
    required: bool,
}

/// The rows of the table under `## Configuration`.
fn readme_rows() -> Vec<Row> {
    let section = README
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a `## Configuration` section");
    let rows: Vec<Row> = section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert!(
                cells.len() >= 3,
                "a configuration row has too few cells: {line}"
            );
            let variable = cells[0].trim_matches('`').to_owned();
            let used_by = parse_used_by(&variable, cells[1]);
            let values = backticked(cells[2]);
            // `1000` / `2000` gives one default per user, in the order of the "used by" cell.
            let defaults = if values.len() == used_by.len() && values.len() > 1 {
                used_by.iter().copied().zip(values).collect()
            } else {
                values
                    .first()
                    .map(|value| used_by.iter().map(|user| (*user, value.clone())).collect())
                    .unwrap_or_default()
            };
            Row {
                required: cells[2] == "(required)",
                variable,
                used_by,
                defaults,
            }
        })
        .collect();
    assert!(
        rows.len() > 10,
        "found only {} configuration rows",
        rows.len()
    );
    rows
}

fn parse_used_by(variable: &str, cell: &str) -> Vec<Binary> {
    // A note in parentheses ("cli (reconcile)") says which commands; the binary is what counts.
    let mut names = String::new();
    let mut depth = 0_u32;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => names.push(c),
            _ => {}
        }
    }
    let mut used_by = Vec::new();
    for name in names.split(',').map(str::trim) {
        match name {
            "all" => used_by.extend(Binary::ALL),
            "all services" => used_by.extend([Binary::Receiver, Binary::Worker, Binary::Api]),
            "receiver" => used_by.push(Binary::Receiver),
            "worker" => used_by.push(Binary::Worker),
            "api" => used_by.push(Binary::Api),
            "cli" => used_by.push(Binary::Cli),
            other => panic!(
                "README: `{variable}` is used by `{other}`, which this test does not know; \
                 teach `Binary` about the new binary and its configuration structs"
            ),
        }
    }
    used_by
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The variables the binary needs to start at all, set to a placeholder.
fn required_vars(rows: &[Row], binary: Binary) -> Vec<(String, String)> {
    rows.iter()
        .filter(|row| row.required && row.used_by.contains(&binary))
        .map(|row| (row.variable.clone(), "placeholder".to_owned()))
        .collect()
}

#[test]
fn the_readme_lists_every_variable_with_exactly_the_binaries_that_read_it() {
    let mut in_readme: BTreeMap<String, BTreeSet<Binary>> = BTreeMap::new();
    for row in readme_rows() {
        let users = in_readme.entry(row.variable).or_default();
        assert!(users.is_empty(), "a variable is listed twice in the README");
        users.extend(row.used_by);
    }
    let mut in_code: BTreeMap<String, BTreeSet<Binary>> = BTreeMap::new();
    for binary in Binary::ALL {
        for variable in binary.variables_in_code() {
            in_code.entry(variable).or_default().insert(binary);
        }
    }
    let mut differences = Vec::new();
    for variable in in_readme
        .keys()
        .chain(in_code.keys())
        .collect::<BTreeSet<_>>()
    {
        let readme = in_readme.get(variable).cloned().unwrap_or_default();
        let code = in_code.get(variable).cloned().unwrap_or_default();
        if readme != code {
            differences.push(format!(
                "{variable}: README says used by {readme:?}, the code reads it in {code:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "README.md's configuration table and the configuration structs disagree:\n{}",
        differences.join("\n")
    );
}

#[test]
fn the_readme_defaults_are_the_defaults_in_the_code() {
    let rows = readme_rows();
    let mut checked = 0;
    for row in rows.iter().filter(|row| row.required) {
        // The CLI asks for its variables only when a command needs them (see its config module).
        for binary in row.used_by.iter().filter(|binary| **binary != Binary::Cli) {
            let without: Vec<_> = required_vars(&rows, *binary)
                .into_iter()
                .filter(|(variable, _)| *variable != row.variable)
                .collect();
            let refused = binary.read(&without).unwrap_err().to_string();
            assert!(
                refused.to_uppercase().contains(&row.variable),
                "{binary:?} starts without {}, which the README calls required: {refused}",
                row.variable
            );
            checked += 1;
        }
    }
    for row in &rows {
        for (&binary, value) in &row.defaults {
            if !binary.variables_in_code().contains(&row.variable)
                || OUTSIDE_THE_STRUCTS
                    .iter()
                    .any(|(name, _)| *name == row.variable)
            {
                continue; // the first test reports it; `RUST_LOG`'s default is tracing's
            }
            let unset = required_vars(&rows, binary);
            let mut set = unset.clone();
            set.push((row.variable.clone(), value.clone()));
            assert_eq!(
                binary.read(&set).unwrap(),
                binary.read(&unset).unwrap(),
                "{binary:?}: setting {}={value} (the README's default) changes what it reads",
                row.variable
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} defaults were compared");
    // The comparison above would pass vacuously if a changed value did not show; it does.
    let base = required_vars(&rows, Binary::Worker);
    let mut changed = base.clone();
    changed.push(("MAILTRAIL_BATCH_SIZE".to_owned(), "7".to_owned()));
    assert_ne!(
        Binary::Worker.read(&changed).unwrap(),
        Binary::Worker.read(&base).unwrap()
    );
}

/// `REDIS_URL` is a secret (it may carry a password), so its default is compared where it is used.
#[test]
fn every_binary_defaults_to_the_readmes_redis_url() {
    let rows = readme_rows();
    let row = rows
        .iter()
        .find(|row| row.variable == "REDIS_URL")
        .expect("README lists REDIS_URL");
    let env = |binary| required_vars(&rows, binary);
    let receiver = mailtrail_receiver::ReceiverConfig::from_vars(
        envy::from_iter(env(Binary::Receiver)).unwrap(),
    )
    .unwrap();
    let worker =
        mailtrail_worker::WorkerConfig::from_vars(envy::from_iter(env(Binary::Worker)).unwrap())
            .unwrap();
    let cli = mailtrail_cli::CliConfig::from_vars(envy::from_iter(env(Binary::Cli)).unwrap());
    for (binary, url) in [
        (Binary::Receiver, receiver.queue_settings().url),
        (Binary::Worker, worker.queue_settings().url),
        (Binary::Cli, cli.queue_settings().url),
    ] {
        assert_eq!(Some(&url), row.defaults.get(&binary), "{binary:?}");
    }
    assert_eq!(
        row.defaults.get(&Binary::Receiver).map(String::as_str),
        Some(mailtrail_queue::defaults::DEFAULT_REDIS_URL)
    );
}

/// `mailtrail send-sample` with no `--url` must reach a receiver started with no `MAILTRAIL_BIND`.
#[test]
fn the_cli_posts_to_the_receivers_default_address() {
    let rows = readme_rows();
    let default_of = |variable: &str, binary: Binary| {
        rows.iter()
            .find(|row| row.variable == variable)
            .and_then(|row| row.defaults.get(&binary).cloned())
            .unwrap_or_else(|| panic!("README gives no default for {variable}"))
    };
    assert_eq!(
        default_of("MAILTRAIL_RECEIVER_URL", Binary::Cli),
        format!("http://{}", default_of("MAILTRAIL_BIND", Binary::Receiver))
    );
}

/// Field names of a struct deriving `Deserialize`: what serde's derive passes to
/// `deserialize_struct`, renames applied, so exactly the names `envy` looks for.
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Captured::Fields(fields)) => fields,
        Err(Captured::Other(message)) => panic!("not a plain struct: {message}"),
        Ok(_) => unreachable!("FieldNames never yields a value"),
    }
}

/// A deserializer that only records the field list of the struct asked of it.
struct FieldNames;

#[derive(Debug)]
enum Captured {
    Fields(&'static [&'static str]),
    Other(String),
}

impl fmt::Display for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Captured {}

impl de::Error for Captured {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::Other(message.to_string())
    }
}

impl<'de> Deserializer<'de> for FieldNames {
    type Error = Captured;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Captured> {
        Err(Captured::Other("expected a struct".to_owned()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Captured> {
        Err(Captured::Fields(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
