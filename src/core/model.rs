//! The validated, typed policy of one protected service: pure data shared by every module.
//!
//! `policy::load` is the only producer. Everything here is already checked: names
//! resolve, thresholds are at least one, secrets are references. Consumers may rely on
//! that and do not re-validate.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::time::fmt_duration;
use serde::{Deserialize, Serialize};

use super::kind::StepKind;

/// A region's name as the policy spells it; by convention an AWS region code.
#[derive(
    Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct RegionName(pub String);

impl RegionName {
    pub fn new(s: impl Into<String>) -> Self {
        RegionName(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How much the controller may do on its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Detect, decide and run the failover runbook without a human.
    Auto,
    /// Detect and alert; a human starts the failover.
    Manual,
    /// Decide and log "would fail over now, because …"; never act.
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
            Mode::Shadow => "shadow",
        }
    }
}

/// The four parts of an application a probe can stand for.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Database,
    Api,
    Workers,
    Storage,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Database,
        Component::Api,
        Component::Workers,
        Component::Storage,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Database => "database",
            Component::Api => "api",
            Component::Workers => "workers",
            Component::Storage => "storage",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret, named by where it lives; its value is read only when it is used and is never
/// printed, journaled or logged.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file, trailing newline removed.
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// One protected service, validated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Policy {
    pub service: String,
    pub description: Option<String>,
    pub regions: Regions,
    pub detection: Detection,
    pub guardrails: Guardrails,
    pub journal: JournalSettings,
    pub aws: AwsSettings,
    #[serde(default)]
    pub commands: CommandSettings,
    #[serde(default)]
    pub coordination: Coordination,
    #[serde(default)]
    pub readiness: ReadinessSettings,
    #[serde(default)]
    pub reports: ReportSettings,
    pub channels: Vec<Channel>,
    pub targets: Vec<Target>,
    pub probes: Vec<ProbeSpec>,
    pub failover: Runbook,
    pub failback: Runbook,
}

impl Policy {
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
    pub fn probe(&self, name: &str) -> Option<&ProbeSpec> {
        self.probes.iter().find(|p| p.name == name)
    }
    pub fn runbook(&self, direction: Direction) -> &Runbook {
        match direction {
            Direction::Failover => &self.failover,
            Direction::Failback => &self.failback,
        }
    }
}

/// The regions of a service. Which one is active is state (in the journal), not policy.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Regions {
    /// Where the service normally runs.
    pub primary: RegionName,
    /// Where it may fail over to, most preferred first. Never empty.
    pub secondaries: Vec<RegionName>,
    /// A third location whose observer may vote on outages; it never serves traffic.
    pub witness: Option<RegionName>,
}

impl Regions {
    /// The primary, then the secondaries in priority order.
    pub fn serving(&self) -> impl Iterator<Item = &RegionName> {
        std::iter::once(&self.primary).chain(self.secondaries.iter())
    }
    pub fn is_serving(&self, r: &RegionName) -> bool {
        self.serving().any(|x| x == r)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Detection {
    /// Time between two rounds of the same probe.
    pub interval: Duration,
    /// How long one probe may take before it counts as failed. Always below `interval`.
    pub timeout: Duration,
    /// Consecutive failed rounds of a critical probe that declare its region down.
    pub failure_threshold: u32,
    /// Consecutive successful rounds that declare a down region recovered.
    pub recovery_threshold: u32,
    /// Time between the rounds of a critical probe that has just failed, until its failing
    /// streak takes the region down or the probe passes again: fast confirmation. Between
    /// `timeout` and `interval`; equal to `interval` when it is off.
    pub confirm_interval: Duration,
    /// A critical probe's failing streak takes its region down only once it also spans this
    /// long, from the start of its first failed round to the end of its latest: rounds that
    /// bunch up (after a stall, say) cannot add up to an outage.
    pub min_failure_span: Duration,
    /// The same for recovery: the passing streaks that end an outage must span this long.
    pub min_recovery_span: Duration,
    pub mode: Mode,
}

/// How far (as a fraction of its gap) a probe round may move from its beat. The scheduler
/// applies it; the policy's default spans allow for it.
pub const ROUND_JITTER: f64 = 0.1;

impl Detection {
    /// The longest an outage can go unnoticed: it starts just after a passing round, the
    /// next round comes an interval later, then the confirmation rounds until the streak
    /// has both its count and its span, the last of which may time out. (The ±10 % jitter
    /// of each gap aside.)
    pub fn worst_case_detection(&self) -> Duration {
        let confirm = self
            .confirm_interval
            .saturating_mul(self.failure_threshold.saturating_sub(1));
        self.interval
            .saturating_add(confirm.max(self.min_failure_span))
            .saturating_add(self.timeout)
    }

    /// Whether failed rounds come faster than the normal interval.
    pub fn fast_confirmation(&self) -> bool {
        self.confirm_interval < self.interval
    }

    /// The detection rule in words, for `plan`, `status` and the docs.
    pub fn rule_in_words(&self) -> String {
        let schedule = if self.fast_confirmation() {
            format!(
                "rounds every {}; after a failed round, that probe is re-checked every {} until it passes or its region is down",
                fmt_duration(self.interval),
                fmt_duration(self.confirm_interval)
            )
        } else {
            format!(
                "rounds every {} (no fast confirmation: confirm_interval = interval)",
                fmt_duration(self.interval)
            )
        };
        format!(
            "a region is down when one of its critical probes fails {} rounds in a row spanning at least {}, and up again when every critical probe passes {} in a row spanning at least {}; {schedule}; a round fails after {}",
            self.failure_threshold,
            fmt_duration(self.min_failure_span),
            self.recovery_threshold,
            fmt_duration(self.min_recovery_span),
            fmt_duration(self.timeout)
        )
    }

    /// The default `min_failure_span`: what `failure_threshold` rounds at `confirm_interval`
    /// take at the least (each gap may come 10 % early), so an on-time schedule is never
    /// slowed down by it and only bunched rounds are.
    pub fn default_failure_span(confirm_interval: Duration, failure_threshold: u32) -> Duration {
        least_span(confirm_interval, failure_threshold)
    }

    /// The default `min_recovery_span`: the same for `recovery_threshold` rounds at `interval`.
    pub fn default_recovery_span(interval: Duration, recovery_threshold: u32) -> Duration {
        least_span(interval, recovery_threshold)
    }
}

/// The least time `rounds` rounds `gap` apart (±`ROUND_JITTER`) take, first start to last
/// start, rounded down to whole milliseconds.
fn least_span(gap: Duration, rounds: u32) -> Duration {
    let d = gap
        .mul_f64(1.0 - ROUND_JITTER)
        .saturating_mul(rounds.saturating_sub(1));
    Duration::from_millis(crate::core::time::millis(d))
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Guardrails {
    /// Largest replica lag an automatic promotion accepts; beyond it the failover waits
    /// for an operator who accepts the data loss.
    pub rpo_budget: Duration,
    /// After a failover, no automatic failover for this long.
    pub cooldown: Duration,
    /// At most this many automatic failovers per `failover_window`.
    pub max_failovers: u32,
    pub failover_window: Duration,
    /// Whether the controller may start a failback by itself. Default: never.
    pub auto_failback: bool,
    /// How long the primary region must have been healthy before a failback may start.
    pub failback_healthy_for: Duration,
    /// A loop stall or wall-clock jump larger than this freezes automatic decisions.
    pub clock_jump_tolerance: Duration,
    /// How long automatic decisions stay frozen after a stall or clock jump.
    pub freeze_for: Duration,
    /// Observers that must agree before an automatic failover (1 when a single one runs).
    pub quorum: u32,
    /// The other observers' status URLs (lifeboat daemons probing from elsewhere, `lifeboat
    /// run --witness`, typically in the `[regions] witness` location), asked for their view
    /// before an automatic failover. Each that also sees the serving region down adds a vote.
    pub witnesses: Vec<String>,
    /// The key witness votes are signed with (HMAC-SHA256), shared by the controller and
    /// its witnesses; required when `witnesses` is not empty.
    pub witness_key: Option<SecretRef>,
}

/// How the controllers of a service agree on who acts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "backend")]
pub enum Coordination {
    /// One controller; its SQLite journal is the only record and its epoch the fence.
    #[default]
    Embedded,
    /// Several controllers and observers on etcd: one leader per service, fenced by the
    /// leader key's revision.
    Etcd(EtcdCoordination),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EtcdCoordination {
    /// The `<cluster>` segment of the keys, `/lifeboat/v1/<cluster>/`.
    pub cluster: String,
    /// Client URLs of the etcd members.
    pub members: Vec<String>,
    /// The region of each member, in `members`' order.
    pub member_regions: Vec<String>,
    /// Every controller and observer whose vote counts.
    pub observers: Vec<Observer>,
    pub lease_ttl: Duration,
    pub safety_margin: Duration,
    /// Fresh `down` votes an automatic failover needs: at least a majority of `observers`.
    pub quorum: u32,
    /// How https:// members are trusted and what lifeboat presents to them; `None` when
    /// every member is http://.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EtcdTls>,
    /// The etcd user lifeboat logs in as, for a cluster with `auth enable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<EtcdAuth>,
}

/// TLS to the etcd members. Paths were resolved against the policy's directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdTls {
    /// The CA the members' certificates chain to; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// lifeboat's client certificate, for members started with `--client-cert-auth`.
    pub client: Option<ClientIdentity>,
}

/// A client certificate and its private key, both PEM files. The key is a secret: it is
/// named by its path and read only when connecting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientIdentity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// An etcd user and where its password is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdAuth {
    pub user: String,
    pub password: SecretRef,
}

/// A controller or observer, by the name it runs under and where it probes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observer {
    pub name: String,
    pub region: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JournalSettings {
    /// The SQLite file; relative paths were resolved against the policy's directory.
    /// `None`: `<state dir>/<service>.db`.
    pub path: Option<PathBuf>,
}

/// `[readiness]`: how often the daemon asks every step whether it would work now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadinessSettings {
    /// Between two rounds of the daemon (default 5m).
    pub every: Duration,
    /// The IAM role whose permissions are simulated; `None`: the one lifeboat's
    /// credentials belong to (an assumed role's ARN without its path).
    pub role_arn: Option<String>,
}

impl Default for ReadinessSettings {
    fn default() -> Self {
        ReadinessSettings {
            every: Duration::from_secs(300),
            role_arn: None,
        }
    }
}

/// `[reports]`: where run reports and journal backups go besides the journal's
/// directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSettings {
    /// The reports bucket (`s3 = "s3://bucket/prefix"`); `None`: reports stay local and
    /// the journal is not backed up by itself.
    pub s3: Option<S3Location>,
    /// The bucket's region; `None`: `[aws] region`'s.
    #[serde(default)]
    pub region: Option<String>,
    /// Between two scheduled journal backups (default 1h), besides the one after every
    /// run.
    pub backup_every: Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            s3: None,
            region: None,
            backup_every: Duration::from_secs(3600),
        }
    }
}

/// A place in S3: a bucket and a key prefix (empty, or ending in `/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`. Errors say what is wrong, in words.
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("\"{url}\" is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!(
                "`{bucket}` is not a bucket name (3 to 63 lowercase letters, digits, `.` or `-`)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AwsSettings {
    /// Region for global services (Route 53, CloudFront) and the default for the rest.
    pub region: Option<String>,
    /// Send every AWS call here instead of the public endpoints (a local emulator).
    pub endpoint_url: Option<String>,
    /// A named profile of the standard configuration chain.
    pub profile: Option<String>,
}

/// `[commands]`: what command probes and steps see of lifeboat's environment beyond
/// the basics (`PATH`, `HOME`, the locale) and their `LIFEBOAT_*` variables.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CommandSettings {
    /// Variables passed through by name. Never `AWS_*`, `LIFEBOAT_*` or a variable a
    /// secret reference of the policy names.
    pub pass_env: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// Whether the daemon also sends its alerts here (detections, blocked decisions,
    /// run outcomes), beside the notify steps that name the channel.
    pub alerts: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChannelKind {
    Sns { topic_arn: String },
    Webhook { url: SecretRef },
}

/// A named resource that exists once per region (a database pair, an API, a DNS record…),
/// which probes watch and steps act on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    /// The resource's settings in each region where it exists.
    pub regions: BTreeMap<RegionName, Endpoint>,
}

impl Target {
    pub fn endpoint(&self, region: &RegionName) -> Option<&Endpoint> {
        self.regions.get(region)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Postgres,
    Http,
    Tcp,
    Redis,
    S3,
    RdsInstance,
    AuroraCluster,
    Route53,
    Asg,
    Ecs,
    Cloudfront,
}

impl TargetKind {
    pub const ALL: [TargetKind; 11] = [
        TargetKind::Postgres,
        TargetKind::Http,
        TargetKind::Tcp,
        TargetKind::Redis,
        TargetKind::S3,
        TargetKind::RdsInstance,
        TargetKind::AuroraCluster,
        TargetKind::Route53,
        TargetKind::Asg,
        TargetKind::Ecs,
        TargetKind::Cloudfront,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Postgres => "postgres",
            TargetKind::Http => "http",
            TargetKind::Tcp => "tcp",
            TargetKind::Redis => "redis",
            TargetKind::S3 => "s3",
            TargetKind::RdsInstance => "rds_instance",
            TargetKind::AuroraCluster => "aurora_cluster",
            TargetKind::Route53 => "route53",
            TargetKind::Asg => "asg",
            TargetKind::Ecs => "ecs",
            TargetKind::Cloudfront => "cloudfront",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target's settings in one region.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Endpoint {
    Postgres(PostgresEndpoint),
    Http {
        url: String,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Redis {
        url: String,
        password: Option<SecretRef>,
        /// For `rediss://`: the CA certificates (PEM) the server's certificate must
        /// chain to; the system's roots when `None`.
        #[serde(default)]
        ca_file: Option<PathBuf>,
    },
    S3 {
        bucket: String,
        prefix: String,
        aws_region: String,
    },
    RdsInstance {
        instance_id: String,
        aws_region: String,
    },
    AuroraCluster(AuroraEndpoint),
    Route53(Route53Endpoint),
    Asg {
        group: String,
        aws_region: String,
    },
    Ecs {
        cluster: String,
        service: String,
        aws_region: String,
    },
    Cloudfront {
        distribution_id: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PostgresEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Option<SecretRef>,
    /// Resolved at load time: what the policy says, else `verify-full` for a remote host
    /// and `disable` for a loopback one.
    #[serde(default)]
    pub sslmode: SslMode,
    /// The CA certificates (PEM) the server's certificate must chain to; the system's
    /// roots when `None`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

pub use super::sslmode::SslMode;

impl fmt::Display for PostgresEndpoint {
    /// `user@host:port/database` — never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AuroraEndpoint {
    /// The regional cluster's identifier (or ARN).
    pub cluster_id: String,
    /// The global database this cluster belongs to.
    pub global_cluster_id: String,
    pub aws_region: String,
}

/// How a Route 53 switch moves traffic.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DnsStyle {
    /// A pre-created PRIMARY/SECONDARY failover record pair; the switch changes the
    /// primary record's health check (inverting it), and Route 53's data plane answers
    /// with the secondary. No record is edited.
    FailoverPair,
    /// Weighted records, one per region; the switch sets 100 on the goal and 0 elsewhere.
    Weighted,
    /// One plain record; the switch UPSERTs the goal region's value.
    Simple,
}

impl DnsStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsStyle::FailoverPair => "failover_pair",
            DnsStyle::Weighted => "weighted",
            DnsStyle::Simple => "simple",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Route53Endpoint {
    pub zone_id: String,
    /// Fully qualified, e.g. `api.example.com.`
    pub record_name: String,
    pub record_type: String,
    pub ttl: u32,
    /// How this region's record is found and switched.
    pub record: DnsRecord,
}

impl Route53Endpoint {
    pub fn style(&self) -> DnsStyle {
        match self.record {
            DnsRecord::FailoverPair { .. } => DnsStyle::FailoverPair,
            DnsRecord::Weighted { .. } => DnsStyle::Weighted,
            DnsRecord::Simple { .. } => DnsStyle::Simple,
        }
    }

    /// This region's record set identifier (`failover_pair`, `weighted`).
    pub fn set_identifier(&self) -> Option<&str> {
        match &self.record {
            DnsRecord::FailoverPair { set_identifier, .. }
            | DnsRecord::Weighted { set_identifier } => Some(set_identifier),
            DnsRecord::Simple { .. } => None,
        }
    }
}

/// One region's Route 53 record, by style, with exactly the settings the style needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "style")]
pub enum DnsRecord {
    /// A record of a pre-created PRIMARY/SECONDARY failover pair.
    FailoverPair {
        set_identifier: String,
        /// The health check attached to the PRIMARY record; when `None`, the switch reads
        /// it from the live PRIMARY record.
        health_check_id: Option<String>,
    },
    /// A weighted record; the switch sets 100 on the goal and 0 on the others.
    Weighted { set_identifier: String },
    /// One plain record; the switch UPSERTs this region's value.
    Simple { value: String },
}

/// One probe: what it watches, in which regions, and what counts as healthy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ProbeSpec {
    pub name: String,
    pub component: Component,
    /// Only critical probes can take a region down; advisory ones inform.
    pub critical: bool,
    /// The target probed; `None` for `command` probes.
    pub target: Option<String>,
    /// The regions probed, primary first.
    pub regions: Vec<RegionName>,
    pub check: ProbeCheck,
}

impl ProbeSpec {
    pub fn kind(&self) -> &'static str {
        self.check.kind()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProbeCheck {
    Http {
        /// Healthy statuses; default `[200]`.
        expect_status: Vec<u16>,
        body_contains: Option<String>,
        /// A JSON field (dotted path, e.g. `checks.database`) and the value it must have.
        json_field: Option<String>,
        json_equals: Option<String>,
        /// Slower answers count as failures.
        max_latency: Option<Duration>,
    },
    /// Connect and `SELECT 1`; also reports role and replica lag.
    Postgres,
    Tcp,
    /// Redis `PING`.
    Redis,
    /// Put, read back and delete a small uniquely named object.
    S3,
    /// Describe the RDS instance or Aurora cluster: available, role, lag.
    Rds,
    /// Workers are alive: the newest heartbeat is younger than `max_age`, or the group
    /// runs at least `min_count` instances/tasks.
    Heartbeat {
        max_age: Option<Duration>,
        /// Redis key or S3 object key holding the heartbeat; for HTTP, the JSON field.
        key: Option<String>,
        min_count: Option<u32>,
    },
    /// Run a program; exit status 0 is healthy. It is killed at the timeout.
    Command {
        run: Vec<String>,
    },
}

impl ProbeCheck {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeCheck::Http { .. } => "http",
            ProbeCheck::Postgres => "postgres",
            ProbeCheck::Tcp => "tcp",
            ProbeCheck::Redis => "redis",
            ProbeCheck::S3 => "s3",
            ProbeCheck::Rds => "rds",
            ProbeCheck::Heartbeat { .. } => "heartbeat",
            ProbeCheck::Command { .. } => "command",
        }
    }
}

/// Which way a run moves the service.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Primary (or current) region to a secondary.
    Failover,
    /// Back to the primary region.
    Failback,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Failover => "failover",
            Direction::Failback => "failback",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ordered list of steps. Adjacent steps with the same `stage` label run in parallel.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Runbook {
    pub steps: Vec<StepSpec>,
}

/// Where a step acts: a named region, or the region the run moves to or away from.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionRef {
    Named(RegionName),
    /// `@to`: the region the run moves the service to.
    To,
    /// `@from`: the region the run moves the service away from.
    From,
}

impl fmt::Display for RegionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionRef::Named(r) => write!(f, "{r}"),
            RegionRef::To => f.write_str("@to"),
            RegionRef::From => f.write_str("@from"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepSpec {
    pub name: String,
    pub region: RegionRef,
    /// Adjacent steps sharing a label form one stage and run in parallel.
    pub stage: Option<String>,
    /// Deadline for the whole step: check, apply with retries, and verify.
    pub timeout: Duration,
    /// A failure is reported but does not stop the run (always true for notifications).
    pub continue_on_error: bool,
    pub action: Action,
}

/// What a Redis invalidation removes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// Keys matching a glob pattern (`orders:*`).
    Pattern(String),
    /// The whole database of the URL.
    FlushDb,
}

/// What a step does, as the policy says it. Each variant names the target or channel it
/// acts on; planning resolves those into a `core::binding::Binding`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// PromoteReadReplica on a cross-region RDS read replica.
    RdsPromoteReplica {
        target: String,
    },
    /// FailoverGlobalCluster (unplanned; data loss only when the run accepted it).
    AuroraGlobalFailover {
        target: String,
    },
    /// SwitchoverGlobalCluster (planned; no data loss).
    AuroraGlobalSwitchover {
        target: String,
    },
    /// `pg_promote(wait => true)` on a self-managed standby.
    PostgresPromote {
        target: String,
    },
    /// Make a reachable old primary refuse writes.
    PostgresFence {
        target: String,
    },
    /// Wait until this region's standby has replayed everything the fenced writer in the
    /// region being left wrote (the zero-data-loss part of a switchover).
    PostgresCatchUp {
        target: String,
    },
    Route53Switch {
        target: String,
    },
    AsgScale {
        target: String,
        min: u32,
        desired: u32,
        max: u32,
    },
    EcsScale {
        target: String,
        desired: u32,
    },
    RedisInvalidate {
        target: String,
        scope: CacheScope,
    },
    CloudfrontInvalidate {
        target: String,
        paths: Vec<String>,
    },
    Notify {
        channel: String,
        message: Option<String>,
    },
    S3SyncCheck {
        target: String,
        copy_missing: bool,
        prefix: String,
    },
    /// Wait for `successes` consecutive healthy rounds of the named probes (all of the
    /// region's critical probes when empty).
    WaitHealthy {
        probes: Vec<String>,
        successes: u32,
    },
    ManualApproval {
        prompt: String,
    },
    /// Run a program; the environment carries the run id, epoch and regions.
    Command {
        run: Vec<String>,
    },
}

impl Action {
    pub fn kind(&self) -> StepKind {
        match self {
            Action::RdsPromoteReplica { .. } => StepKind::RdsPromoteReplica,
            Action::AuroraGlobalFailover { .. } => StepKind::AuroraGlobalFailover,
            Action::AuroraGlobalSwitchover { .. } => StepKind::AuroraGlobalSwitchover,
            Action::PostgresPromote { .. } => StepKind::PostgresPromote,
            Action::PostgresFence { .. } => StepKind::PostgresFence,
            Action::PostgresCatchUp { .. } => StepKind::PostgresCatchUp,
            Action::Route53Switch { .. } => StepKind::Route53Switch,
            Action::AsgScale { .. } => StepKind::AsgScale,
            Action::EcsScale { .. } => StepKind::EcsScale,
            Action::RedisInvalidate { .. } => StepKind::RedisInvalidate,
            Action::CloudfrontInvalidate { .. } => StepKind::CloudfrontInvalidate,
            Action::Notify { .. } => StepKind::Notify,
            Action::S3SyncCheck { .. } => StepKind::S3SyncCheck,
            Action::WaitHealthy { .. } => StepKind::WaitHealthy,
            Action::ManualApproval { .. } => StepKind::ManualApproval,
            Action::Command { .. } => StepKind::Command,
        }
    }

    /// The target this action works on, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Action::RdsPromoteReplica { target }
            | Action::AuroraGlobalFailover { target }
            | Action::AuroraGlobalSwitchover { target }
            | Action::PostgresPromote { target }
            | Action::PostgresFence { target }
            | Action::PostgresCatchUp { target }
            | Action::Route53Switch { target }
            | Action::AsgScale { target, .. }
            | Action::EcsScale { target, .. }
            | Action::RedisInvalidate { target, .. }
            | Action::CloudfrontInvalidate { target, .. }
            | Action::S3SyncCheck { target, .. } => Some(target),
            Action::Notify { .. }
            | Action::WaitHealthy { .. }
            | Action::ManualApproval { .. }
            | Action::Command { .. } => None,
        }
    }
}
