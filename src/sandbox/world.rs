//! `lifeboat sandbox up|down|status`: the whole local two-region world, started and
//! stopped as one. Everything it starts is recorded (PIDs, ports, data directories) in
//! `<dir>/sandbox.json`; the ports and moto's identifiers the policy needs go to the vars
//! file the sandbox policy reads (`<dir>/state.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::aws::{self as sandbox_aws, Names, Provisioned};
use super::ha::{self, Ha, Role};
use super::postgres::{PgPair, PgServer, StopMode};
use super::process::{self, Server, free_port, port_open};
use super::region::{ProxyPorts, RegionConfig};
use super::{moto, redis};
use crate::clients::aws::AwsClients;

/// The sandbox's reports bucket (run reports, journal backups).
pub const REPORTS_BUCKET: &str = "sandbox-orders-reports";
pub const PRIMARY: &str = "us-east-1";
pub const SECONDARY: &str = "us-west-2";
pub const RECORD: &str = "orders.sandbox.lifeboat.test.";
const ZONE: &str = "sandbox.lifeboat.test.";

/// A running service of the sandbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Service {
    pub pid: u32,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PgInfo {
    pub data: PathBuf,
    pub port: u16,
}

/// Everything `sandbox up` started, as recorded in `sandbox.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct World {
    pub dir: PathBuf,
    pub moto: Service,
    pub redis: BTreeMap<String, Service>,
    pub regions: BTreeMap<String, (Service, RegionConfig)>,
    pub pg: BTreeMap<String, PgInfo>,
    pub aws: Provisioned,
    pub record: String,
    /// A second lifeboat daemon, `run --witness`, that reaches every service directly
    /// (not through the controller's fault proxies) and votes on outages.
    #[serde(default)]
    pub witness: Option<Service>,
    /// With an etcd policy: the etcd cluster, the controllers and the observer (then
    /// there is no HTTP witness).
    #[serde(default)]
    pub ha: Option<Ha>,
}

impl World {
    pub fn load(dir: &Path) -> anyhow::Result<World> {
        let path = dir.join("sandbox.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no sandbox is recorded in {} (start one with `lifeboat sandbox up`)",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a sandbox record; remove the directory and run `lifeboat sandbox up`",
                path.display()
            )
        })
    }

    pub fn pg(&self, region: &str) -> anyhow::Result<PgServer> {
        let info = self
            .pg
            .get(region)
            .with_context(|| format!("no database for {region}"))?;
        PgServer::open(region, info.data.clone(), info.port)
    }

    /// The API of a region, as clients reach it (bypassing the controller's proxies).
    pub fn api_url(&self, region: &str) -> Option<String> {
        self.regions
            .get(region)
            .map(|(_, c)| format!("http://127.0.0.1:{}", c.api_port))
    }

    pub fn moto_url(&self) -> String {
        moto::endpoint(self.moto.port)
    }

    pub fn password(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.dir.join("pg-password"))?
            .trim()
            .to_string())
    }
}

/// Where a policy's sandbox lives: the directory of its vars file
/// (`[vars] file = "../.lifeboat/sandbox/state.toml"` in policies/sandbox.toml).
pub fn dir_for_policy(policy: &Path) -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read_to_string(policy).with_context(|| format!("read {}", policy.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parse {}", policy.display()))?;
    let file = table
        .get("vars")
        .and_then(|v| v.get("file"))
        .and_then(|f| f.as_str())
        .with_context(|| {
            format!(
                "{} has no [vars] file, so it names no sandbox state file",
                policy.display()
            )
        })?;
    let base = policy.parent().unwrap_or(Path::new("."));
    let state = normalize(&base.join(file));
    Ok(state.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Removes `.` and `dir/..` pairs without touching the file system (the directory may
/// not exist yet).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

fn stage(msg: &str) {
    eprintln!("  {msg}");
}

/// Starts the sandbox in `dir` for `policy` (which the witness daemon watches), unless
/// one is already running there.
pub async fn up(dir: &Path, policy: &Path) -> anyhow::Result<World> {
    if let Ok(w) = World::load(dir) {
        if process::alive(w.moto.pid) {
            eprintln!("the sandbox in {} is already up", dir.display());
            return Ok(w);
        }
        eprintln!(
            "found a stale sandbox record in {}; cleaning it up first",
            dir.display()
        );
        down(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let password = format!("sbx-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    crate::clients::secret::write_private(&dir.join("pg-password"), &password)?;
    // The key the witness signs its votes with and the controller checks them with
    // (policies/sandbox.toml: [guardrails] witness_key).
    let key = crate::clients::secret::random_token()?;
    crate::clients::secret::write_private(&dir.join("witness.key"), key.expose())?;

    // Record what is started as it starts, so `down` can clean up after a failed `up`.
    let mut started: Vec<u32> = Vec::new();
    let policy = policy
        .canonicalize()
        .with_context(|| format!("find {}", policy.display()))?;
    let result = start_all(&dir, &password, &mut started, &policy).await;
    if result.is_err() {
        for pid in started {
            process::stop_pid(pid, Duration::from_secs(2));
        }
        if let Ok(pair) = open_pair(&dir) {
            pair.stop_all();
        }
    }
    result
}

fn open_pair(dir: &Path) -> anyhow::Result<PgPair> {
    let p = PgServer::open(PRIMARY, dir.join("pg/primary"), 0)?;
    let s = PgServer::open(SECONDARY, dir.join("pg/standby"), 0)?;
    Ok(PgPair::from_servers(p, s))
}

async fn start_all(
    dir: &Path,
    password: &str,
    started: &mut Vec<u32>,
    policy: &Path,
) -> anyhow::Result<World> {
    let layout = {
        let (p, _) = crate::policy::load_valid(policy)?;
        ha::layout(&p)
    };
    stage("starting moto's server (the AWS APIs)");
    let moto_port = free_port()?;
    let moto = moto::start(&dir.join("moto"), moto_port)?;
    let moto = Service {
        pid: moto.detach(),
        port: moto_port,
    };
    started.push(moto.pid);

    stage("creating a PostgreSQL primary (us-east-1) and its streaming standby (us-west-2)");
    let (pp, sp) = (free_port()?, free_port()?);
    let pair = PgPair::create(&dir.join("pg"), pp, sp, password)?;
    pair.primary.sql_in(
        super::postgres::APP_DATABASE,
        "CREATE TABLE orders (n bigint PRIMARY KEY, region text NOT NULL, at timestamptz NOT NULL DEFAULT now()); ALTER TABLE orders OWNER TO lifeboat",
    )?;
    pair.standby
        .wait_caught_up(&pair.primary, Duration::from_secs(20))?;
    let (primary, standby) = pair.detach();
    let mut pg = BTreeMap::new();
    pg.insert(
        PRIMARY.to_string(),
        PgInfo {
            data: primary.data.clone(),
            port: primary.port,
        },
    );
    pg.insert(
        SECONDARY.to_string(),
        PgInfo {
            data: standby.data.clone(),
            port: standby.port,
        },
    );

    stage("starting Redis in each region");
    let mut redis_services = BTreeMap::new();
    for region in [PRIMARY, SECONDARY] {
        let port = free_port()?;
        let server = redis::start(&dir.join("redis"), &format!("redis-{region}"), port)?;
        let s = Service {
            pid: server.detach(),
            port,
        };
        started.push(s.pid);
        redis_services.insert(region.to_string(), s);
    }

    let etcd = match &layout {
        Some(_) => {
            stage("starting a three-member etcd cluster (pre-vote on)");
            let members = ha::start_etcd(dir).await?;
            started.extend(members.iter().map(|m| m.pid));
            members
        }
        None => Vec::new(),
    };

    stage("starting each region's API, workers and fault proxies");
    let mut regions = BTreeMap::new();
    for region in [PRIMARY, SECONDARY] {
        let (api_port, workers_port) = (free_port()?, free_port()?);
        let mut proxies = BTreeMap::new();
        proxies.insert(
            "db".to_string(),
            ProxyPorts {
                listen: free_port()?,
                upstream: pg[region].port,
            },
        );
        proxies.insert(
            "cache".to_string(),
            ProxyPorts {
                listen: free_port()?,
                upstream: redis_services[region].port,
            },
        );
        proxies.insert(
            "api".to_string(),
            ProxyPorts {
                listen: free_port()?,
                upstream: api_port,
            },
        );
        proxies.insert(
            "workers".to_string(),
            ProxyPorts {
                listen: free_port()?,
                upstream: workers_port,
            },
        );
        if let Some(nodes) = &layout {
            let upstreams = ha::SERVICE_PROXIES
                .iter()
                .map(|name| (name.to_string(), proxies[*name].upstream))
                .collect();
            proxies.extend(ha::extra_proxies(region, nodes, &upstreams, &etcd)?);
        }
        if region == PRIMARY {
            // The standby's replication stream crosses "regions" through this proxy, so a
            // drill can degrade the link (and so create real replica lag).
            let upstream = pg[region].port;
            let listen = free_port()?;
            proxies.insert("replication".to_string(), ProxyPorts { listen, upstream });
        }
        let config = RegionConfig {
            region: region.to_string(),
            api_port,
            workers_port,
            db_port: pg[region].port,
            db_password_file: dir.join("pg-password"),
            proxies,
        };
        let config_path = dir.join(format!("region-{region}.json"));
        std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
        let mut cmd = Command::new(std::env::current_exe().context("find the lifeboat binary")?);
        cmd.args(["sandbox", "serve-region", "--config"])
            .arg(&config_path);
        let server = Server::spawn(
            &format!("region {region}"),
            cmd,
            api_port,
            dir.join(format!("region-{region}.log")),
            Duration::from_secs(15),
        )?;
        let s = Service {
            pid: server.detach(),
            port: api_port,
        };
        started.push(s.pid);
        regions.insert(region.to_string(), (s, config));
    }

    stage("routing the standby's replication stream through the replication proxy");
    let standby = PgServer::open(SECONDARY, pg[SECONDARY].data.clone(), pg[SECONDARY].port)?;
    let via = regions[PRIMARY].1.proxies["replication"].listen;
    standby.sql(&format!(
        "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port={via} user=postgres application_name={SECONDARY}'"
    ))?;
    standby.sql("SELECT pg_reload_conf()")?;

    stage(
        "creating the Route 53 zone and failover records, buckets, Auto Scaling groups and SNS topic in moto",
    );
    let clients = AwsClients::for_emulator(&moto::endpoint(moto.port));
    let names = Names {
        zone: ZONE.to_string(),
        record: RECORD.to_string(),
        regions: vec![
            (
                PRIMARY.to_string(),
                PRIMARY.to_string(),
                "192.0.2.10".to_string(),
            ),
            (
                SECONDARY.to_string(),
                SECONDARY.to_string(),
                "198.51.100.10".to_string(),
            ),
        ],
        buckets: vec![
            (
                PRIMARY.to_string(),
                "sandbox-orders-assets-use1".to_string(),
            ),
            (
                SECONDARY.to_string(),
                "sandbox-orders-assets-usw2".to_string(),
            ),
            // Run reports and journal backups ([reports] s3 in the sandbox policy).
            (PRIMARY.to_string(), REPORTS_BUCKET.to_string()),
        ],
        groups: vec![
            (
                PRIMARY.to_string(),
                "sandbox-orders-workers-use1".to_string(),
                2,
            ),
            (
                SECONDARY.to_string(),
                "sandbox-orders-workers-usw2".to_string(),
                1,
            ),
        ],
        topic: "sandbox-orders-ops".to_string(),
    };
    let aws = sandbox_aws::provision(&clients, &names).await?;

    let mut world = World {
        dir: dir.to_path_buf(),
        moto,
        redis: redis_services,
        regions,
        pg,
        aws,
        record: RECORD.to_string(),
        witness: Some(Service {
            pid: 0,
            port: free_port()?,
        }),
        ha: None,
    };
    if let Some(nodes) = layout {
        world.witness = None;
        world.ha = Some(start_nodes(&mut world, &nodes, etcd, started, policy)?);
        std::fs::write(
            dir.join("sandbox.json"),
            serde_json::to_string_pretty(&world)?,
        )?;
        return Ok(world);
    }
    std::fs::write(dir.join("state.toml"), vars(&world, View::Controller))?;
    std::fs::write(dir.join("witness.toml"), vars(&world, View::Witness))?;

    stage("starting the witness: a second lifeboat that reaches every service directly");
    let port = world.witness.as_ref().map(|w| w.port).unwrap_or_default();
    let mut cmd = Command::new(std::env::current_exe().context("find the lifeboat binary")?);
    cmd.arg("run")
        .arg("--policy")
        .arg(policy)
        .arg("--witness")
        .arg("--vars")
        .arg(dir.join("witness.toml"))
        .arg("--journal")
        .arg(dir.join("witness.db"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env("LIFEBOAT_API_TOKEN", "");
    let server = Server::spawn(
        "the witness",
        cmd,
        port,
        dir.join("witness.log"),
        Duration::from_secs(20),
    )?;
    let pid = server.detach();
    started.push(pid);
    world.witness = Some(Service { pid, port });

    std::fs::write(
        dir.join("sandbox.json"),
        serde_json::to_string_pretty(&world)?,
    )?;
    Ok(world)
}

/// The HA topology's nodes, each with its own vars file: the controller in the
/// secondary region reads `state.toml` (the policy's own vars file, so the CLI finds it
/// too), the others `<name>.toml`.
fn start_nodes(
    world: &mut World,
    nodes: &[(String, String, Role)],
    etcd: Vec<super::etcd::DetachedMember>,
    started: &mut Vec<u32>,
    policy: &Path,
) -> anyhow::Result<Ha> {
    let dir = world.dir.clone();
    let (p, _) = crate::policy::load_valid(policy)?;
    let default_journal = crate::journal::location(&p, &dir);
    let mut ha = Ha {
        etcd,
        nodes: Vec::new(),
    };
    let mut planned = Vec::new();
    for (name, region, role) in nodes {
        let (view, file, journal) = match (role, region.as_str()) {
            (Role::Controller, SECONDARY) => (
                View::Controller,
                dir.join("state.toml"),
                default_journal.clone(),
            ),
            (Role::Controller, _) => (
                View::Witness,
                dir.join(format!("{name}.toml")),
                dir.join(format!("{name}.db")),
            ),
            (Role::Observer, _) => (
                View::Observer,
                dir.join(format!("{name}.toml")),
                dir.join(format!("{name}.db")),
            ),
        };
        let proxies = world.regions.get(region).map(|(_, c)| &c.proxies);
        let text = vars(world, view) + &ha::etcd_vars(*role, proxies, &ha.etcd);
        std::fs::write(&file, text)?;
        planned.push((name, region, *role, file, journal));
    }
    // The controller outside the primary region first, so it is the first to campaign;
    // the observer last.
    planned.sort_by_key(|(_, region, role, _, _)| (*role == Role::Observer, *region != SECONDARY));
    for (name, region, role, file, journal) in planned {
        stage(&format!(
            "starting {} {name} in {region}",
            match role {
                Role::Controller => "controller",
                Role::Observer => "observer",
            }
        ));
        let node = ha::start_node(&dir, policy, name, region, role, file, journal)?;
        started.push(node.pid);
        ha.nodes.push(node);
    }
    Ok(ha)
}

/// Whose view of the services a vars file gives.
#[derive(Clone, Copy, PartialEq)]
enum View {
    /// Through the fault proxies, so a drill can cut the controller off.
    Controller,
    /// Straight to each service, as a witness elsewhere would reach them.
    Witness,
    /// Through the observer's own proxies (`obs-db`, …), so a drill can cut it off alone.
    Observer,
}

/// The vars file the sandbox policy reads: the ports as `view` reaches them, the
/// witness's port and moto's identifiers.
fn vars(w: &World, view: View) -> String {
    let proxy = |region: &str, name: &str| {
        let proxies = &w.regions[region].1.proxies;
        match view {
            View::Controller => proxies[name].listen,
            View::Witness => proxies[name].upstream,
            View::Observer => {
                proxies
                    .get(&ha::observer_proxy(name))
                    .unwrap_or(&proxies[name])
                    .listen
            }
        }
    };
    let mut s = String::from(match view {
        View::Controller => {
            "# Written by `lifeboat sandbox up`; read by policies/sandbox.toml. Do not edit.\n"
        }
        View::Witness => {
            "# Written by `lifeboat sandbox up`; a daemon that reaches the services directly reads its policy with these ports. Do not edit.\n"
        }
        View::Observer => {
            "# Written by `lifeboat sandbox up`; the observer reads its policy with these ports (through its own proxies). Do not edit.\n"
        }
    });
    let lines = [
        ("moto_port", w.moto.port.to_string()),
        ("pg_primary_port", proxy(PRIMARY, "db").to_string()),
        ("pg_standby_port", proxy(SECONDARY, "db").to_string()),
        ("api_use1_port", proxy(PRIMARY, "api").to_string()),
        ("api_usw2_port", proxy(SECONDARY, "api").to_string()),
        ("workers_use1_port", proxy(PRIMARY, "workers").to_string()),
        ("workers_usw2_port", proxy(SECONDARY, "workers").to_string()),
        ("redis_use1_port", proxy(PRIMARY, "cache").to_string()),
        ("redis_usw2_port", proxy(SECONDARY, "cache").to_string()),
        ("zone_id", format!("\"{}\"", w.aws.zone_id)),
    ];
    for (k, v) in lines {
        s.push_str(&format!("{k} = {v}\n"));
    }
    if let Some(witness) = &w.witness {
        s.push_str(&format!("witness_port = {}\n", witness.port));
    }
    s
}

/// Stops everything the sandbox in `dir` started, by PID, and removes its data.
pub fn down(dir: &Path) -> anyhow::Result<()> {
    let world = match World::load(dir) {
        Ok(w) => w,
        Err(e) if !dir.exists() => return Err(e),
        Err(_) => {
            // A failed `up` leaves no record; stop any PostgreSQL it left, then clean up.
            if let Ok(pair) = open_pair(dir) {
                pair.stop_all();
            }
            std::fs::remove_dir_all(dir)?;
            return Ok(());
        }
    };
    if let Some(w) = &world.witness {
        process::stop_pid(w.pid, Duration::from_secs(3));
    }
    if let Some(h) = &world.ha {
        ha::stop(h);
    }
    for (s, _) in world.regions.values() {
        process::stop_pid(s.pid, Duration::from_secs(3));
    }
    for s in world.redis.values() {
        process::stop_pid(s.pid, Duration::from_secs(3));
    }
    process::stop_pid(world.moto.pid, Duration::from_secs(3));
    for region in world.pg.keys() {
        if let Ok(pg) = world.pg(region)
            && pg.is_running()
        {
            pg.stop(StopMode::Immediate)?;
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(())
}

/// One line of `sandbox status`.
#[derive(Debug, Serialize)]
pub struct ComponentStatus {
    pub component: String,
    pub region: String,
    pub up: bool,
    pub detail: String,
}

pub fn status(dir: &Path) -> anyhow::Result<Vec<ComponentStatus>> {
    let w = World::load(dir)?;
    let mut out = Vec::new();
    let svc = |name: &str, region: &str, s: &Service, what: &str| ComponentStatus {
        component: name.to_string(),
        region: region.to_string(),
        up: process::alive(s.pid) && port_open(s.port),
        detail: format!("pid {} port {} {what}", s.pid, s.port),
    };
    out.push(svc("moto", "-", &w.moto, "(AWS APIs)"));
    for region in w.pg.keys() {
        let pg = w.pg(region)?;
        let (up, detail) = match (pg.is_running(), pg.in_recovery()) {
            (true, Ok(true)) => (true, "standby (read-only, streaming)".to_string()),
            (true, Ok(false)) => (true, "primary (accepts writes)".to_string()),
            (true, Err(e)) => (false, format!("running but not answering: {e:#}")),
            (false, _) => (false, "stopped".to_string()),
        };
        out.push(ComponentStatus {
            component: "postgres".into(),
            region: region.clone(),
            up,
            detail: format!("port {} {detail}", pg.port),
        });
    }
    for (region, s) in &w.redis {
        out.push(svc("redis", region, s, ""));
    }
    if let Some(witness) = &w.witness {
        out.push(svc(
            "witness",
            "-",
            witness,
            "(lifeboat run --witness, reaching services directly)",
        ));
    }
    if let Some(h) = &w.ha {
        for m in &h.etcd {
            out.push(ComponentStatus {
                component: "etcd".into(),
                region: "-".into(),
                up: process::alive(m.pid) && port_open(m.client_port),
                detail: format!("member {} pid {} port {}", m.name, m.pid, m.client_port),
            });
        }
        for n in &h.nodes {
            let s = Service {
                pid: n.pid,
                port: n.port,
            };
            let what = match n.role {
                Role::Controller => format!("(controller {}, lifeboat run --node)", n.name),
                Role::Observer => format!("(observer {}, lifeboat run --observer)", n.name),
            };
            out.push(svc("lifeboat", &n.region, &s, &what));
        }
    }
    for (region, (s, _)) in &w.regions {
        out.push(svc(
            "api+workers",
            region,
            s,
            "(with fault switches and proxies)",
        ));
    }
    let clients = AwsClients::for_emulator(&w.moto_url());
    let rt = tokio::runtime::Handle::try_current();
    let active = match rt {
        Ok(_) => None,
        Err(_) => tokio::runtime::Runtime::new().ok().and_then(|rt| {
            rt.block_on(sandbox_aws::active_region(
                &clients,
                &w.aws.zone_id,
                &w.record,
                &w.aws.health_check_id,
            ))
            .ok()
        }),
    };
    out.push(ComponentStatus {
        component: "dns".into(),
        region: active.clone().unwrap_or_else(|| "?".into()),
        up: active.is_some(),
        detail: format!(
            "{} answers with {}",
            w.record,
            active.unwrap_or_else(|| "(unknown)".into())
        ),
    });
    Ok(out)
}

/// Fails unless every component is up.
pub fn ensure_up(dir: &Path) -> anyhow::Result<()> {
    let down: Vec<String> = status(dir)?
        .into_iter()
        .filter(|c| !c.up)
        .map(|c| format!("{} {}", c.component, c.region))
        .collect();
    if !down.is_empty() {
        bail!(
            "parts of the sandbox are down: {}; run `lifeboat sandbox down` then `lifeboat sandbox up`",
            down.join(", ")
        );
    }
    Ok(())
}
