//! TLS and authentication from lifeboat to etcd, against a real 3-member cluster whose
//! client URLs speak only TLS and ask every client for a certificate signed by the test's
//! CA (`--client-cert-auth`), with certificates the test makes. A controller leads and
//! writes fenced with a client certificate, and with an etcd user and password; a wrong
//! password, a CA that did not sign the members' certificates, a missing client
//! certificate and a missing permission are each refused with a message that says what
//! to change and never holds the password; a session outlives its auth tokens. End to
//! end, two `lifeboat run --node` daemons configured by the policy alone elect one leader
//! over TLS and a login, and a failover goes through the fenced record.

#[path = "support/etcd.rs"]
mod etcd_support;
mod support;
#[path = "support/tls.rs"]
mod tls_helpers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_support::*;
use lifeboat::coord::error::CoordError;
use lifeboat::coord::etcd::{EtcdSettings, FencedWrite};
use lifeboat::core::controller::Leadership;
use lifeboat::core::model::{ClientIdentity, EtcdAuth, EtcdTls, SecretRef};
use lifeboat::sandbox::etcd::{ClusterOptions, EtcdCluster, Security};
use support::daemon::{THREE_STEPS, etcd_policy, run_node};
use tls_helpers::TestCa;

const PASSWORD: &str = "correct horse battery staple";

/// The test's PKI: the CA, and a client certificate whose common name is no etcd user
/// (so with authentication on, only a login gives it rights).
struct Pki {
    ca_file: PathBuf,
    client: ClientIdentity,
}

/// A secure 3-member cluster under `dir`.
async fn secure_cluster(dir: &Path, auth_token_ttl: Option<Duration>) -> (EtcdCluster, Pki) {
    let ca = TestCa::new("etcd");
    let ca_file = ca.write(dir, "ca.pem");
    let (cert_file, key_file) = ca.server(&["127.0.0.1", "localhost"]).write(dir, "member");
    let (admin_cert_file, admin_key_file) = ca.client("root").write(dir, "admin");
    let (cert, key) = ca.client("lifeboat-client").write(dir, "client");
    let security = Security {
        ca_file: ca_file.clone(),
        cert_file,
        key_file,
        admin_cert_file,
        admin_key_file,
        auth_token_ttl,
    };
    let cluster = EtcdCluster::start_secure(dir, ClusterOptions::etcd_defaults(), security)
        .await
        .unwrap_or_else(|e| panic!("could not start a secure 3-member etcd cluster: {e:#}"));
    let client = ClientIdentity {
        cert_file: cert,
        key_file: key,
    };
    (cluster, Pki { ca_file, client })
}

/// The coordination tests' timing, but the production call deadline (1 s): a TLS
/// handshake and a login (etcd checks the password with bcrypt) on a busy machine take
/// longer than the 500 ms of plain calls.
fn tls_settings(cluster: &EtcdCluster, pki: &Pki) -> EtcdSettings {
    EtcdSettings {
        tls: Some(EtcdTls {
            ca_file: Some(pki.ca_file.clone()),
            client: Some(pki.client.clone()),
        }),
        call_deadline: Duration::from_secs(1),
        ..settings(cluster.endpoints())
    }
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("etcd-password");
    std::fs::write(&path, format!("{password}\n")).expect("write the password file");
    path
}

/// Turns authentication on with a `lifeboat` user that may write under the test's prefix.
/// Lifeboat's client over TLS, logged in as its etcd user with the test's password.
async fn logged_in(dir: &Path, cluster: &EtcdCluster, pki: &Pki) -> lifeboat::coord::etcd::Etcd {
    connect(EtcdSettings {
        auth: Some(EtcdAuth {
            user: "lifeboat".into(),
            password: SecretRef::File(password_file(dir, PASSWORD)),
        }),
        ..tls_settings(cluster, pki)
    })
    .await
}

async fn with_users(cluster: &EtcdCluster) {
    cluster
        .enable_auth("root-secret")
        .await
        .expect("turn authentication on");
    cluster
        .add_user("lifeboat", PASSWORD, "/lifeboat/v1/test/")
        .await
        .expect("add the lifeboat user");
}

/// Campaigns, writes the service's state fenced, and reads it back.
async fn lead_and_write(etcd: &lifeboat::coord::etcd::Etcd, node: &str) {
    let leadership = lead(etcd, &candidate(node, "us-east-1"), Duration::from_secs(10)).await;
    let state = etcd.keys().service(SERVICE).expect("service").state();
    leadership
        .write(&FencedWrite::new().put(state.clone(), node.as_bytes().to_vec()))
        .await
        .expect("a fenced write");
    let held = etcd.get(&state).await.expect("get").expect("state");
    assert_eq!(held.value, node.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_client_certificate_a_controller_leads_and_writes_fenced() {
    let dir = tempdir();
    let (cluster, pki) = secure_cluster(dir.path(), None).await;
    assert!(
        cluster
            .endpoints()
            .iter()
            .all(|e| e.starts_with("https://"))
    );
    let etcd = connect(tls_settings(&cluster, &pki)).await;
    lead_and_write(&etcd, "ctl-a").await;

    // The same client over plain http is refused before it sends anything: the TLS
    // settings are for https:// members.
    let mut plain = tls_settings(&cluster, &pki);
    plain.endpoints = plain
        .endpoints
        .iter()
        .map(|e| e.replace("https://", "http://"))
        .collect();
    let err = lifeboat::coord::etcd::Etcd::connect(plain)
        .await
        .expect_err("TLS settings with http:// members");
    assert!(
        matches!(err, CoordError::Config { field: "tls", .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_user_and_password_a_controller_leads_and_writes_fenced_under_its_prefix_only() {
    let dir = tempdir();
    let (cluster, pki) = secure_cluster(dir.path(), None).await;
    with_users(&cluster).await;
    let login = EtcdAuth {
        user: "lifeboat".into(),
        password: SecretRef::File(password_file(dir.path(), PASSWORD)),
    };
    let etcd = connect(EtcdSettings {
        auth: Some(login.clone()),
        ..tls_settings(&cluster, &pki)
    })
    .await;
    lead_and_write(&etcd, "ctl-a").await;

    // Without the login, the client certificate alone names no etcd user.
    let anonymous = connect(tls_settings(&cluster, &pki)).await;
    let err = anonymous
        .get("/lifeboat/v1/test/x")
        .await
        .expect_err("no login");
    let msg = err.to_string();
    assert!(matches!(err, CoordError::Rejected { .. }), "{msg}");
    assert!(msg.contains("client certificate"), "{msg}");

    // The user may write under /lifeboat/v1/test/ only: another cluster's prefix is
    // refused, with the permission to grant.
    let elsewhere = connect(EtcdSettings {
        auth: Some(login),
        cluster: "other".into(),
        ..tls_settings(&cluster, &pki)
    })
    .await;
    let err = elsewhere
        .put("/lifeboat/v1/other/x", b"x".to_vec(), 0)
        .await
        .expect_err("outside the user's prefix");
    let msg = err.to_string();
    assert!(matches!(err, CoordError::Rejected { .. }), "{msg}");
    assert!(
        msg.contains("etcd user `lifeboat` may not do this")
            && msg.contains("readwrite on the prefix /lifeboat/v1/other/"),
        "says which permission to grant: {msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_at_once_naming_the_user_and_never_the_password() {
    let dir = tempdir();
    let (cluster, pki) = secure_cluster(dir.path(), None).await;
    with_users(&cluster).await;
    let wrong = "not-the-password-4711";
    let pw = password_file(dir.path(), wrong);
    let etcd = connect(EtcdSettings {
        auth: Some(EtcdAuth {
            user: "lifeboat".into(),
            password: SecretRef::File(pw.clone()),
        }),
        ..tls_settings(&cluster, &pki)
    })
    .await;
    let err = etcd
        .session()
        .await
        .expect_err("a wrong password cannot log in");
    let msg = err.to_string();
    assert!(
        matches!(err, CoordError::Rejected { .. }),
        "a wrong password is the request's fault, not the member's: {msg}"
    );
    assert!(
        msg.contains("etcd user `lifeboat` could not log in")
            && msg.contains(&pw.display().to_string()),
        "names the user and where the password came from: {msg}"
    );
    assert!(!msg.contains(wrong), "never the password: {msg}");
    assert!(
        etcd.endpoint_health().iter().all(|h| h.failures == 0),
        "no member is blamed for a wrong password: {:?}",
        etcd.endpoint_health()
    );

    // A password that cannot be read at all is a configuration error naming the secret.
    let err = lifeboat::coord::etcd::Etcd::connect(EtcdSettings {
        auth: Some(EtcdAuth {
            user: "lifeboat".into(),
            password: SecretRef::Env("LIFEBOAT_TEST_ETCD_PASSWORD_SURELY_UNSET".into()),
        }),
        ..tls_settings(&cluster, &pki)
    })
    .await
    .expect_err("an unset variable");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            CoordError::Config {
                field: "password",
                ..
            }
        ) && msg.contains("LIFEBOAT_TEST_ETCD_PASSWORD_SURELY_UNSET is not set"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_members_ca_is_refused_naming_the_endpoint_and_the_ca() {
    let dir = tempdir();
    let (cluster, pki) = secure_cluster(dir.path(), None).await;
    let other = TestCa::new("not the members'").write(dir.path(), "wrong-ca.pem");
    let etcd = connect(EtcdSettings {
        tls: Some(EtcdTls {
            ca_file: Some(other.clone()),
            client: Some(pki.client.clone()),
        }),
        ..tls_settings(&cluster, &pki)
    })
    .await;
    let err = etcd
        .get("/lifeboat/v1/test/x")
        .await
        .expect_err("untrusted");
    let msg = err.to_string();
    assert!(
        msg.contains(&cluster.endpoint(0)) || msg.contains(&cluster.endpoint(1)),
        "names the endpoint: {msg}"
    );
    assert!(
        msg.contains("not signed by a CA in the CA file") && msg.contains("wrong-ca.pem"),
        "says which check failed, against what, and what to set: {msg}"
    );

    // A client that trusts the members but presents no certificate is told to present one.
    let etcd = connect(EtcdSettings {
        tls: Some(EtcdTls {
            ca_file: Some(pki.ca_file.clone()),
            client: None,
        }),
        ..tls_settings(&cluster, &pki)
    })
    .await;
    let err = etcd.get("/lifeboat/v1/test/x").await.expect_err("no cert");
    let msg = err.to_string();
    assert!(
        msg.contains("set cert_file and key_file"),
        "says to present a client certificate: {msg}"
    );

    // A key that is not the certificate's is refused before connecting, naming both files.
    let (_, stray_key) = TestCa::new("stray").client("x").write(dir.path(), "stray");
    let err = lifeboat::coord::etcd::Etcd::connect(EtcdSettings {
        tls: Some(EtcdTls {
            ca_file: Some(pki.ca_file.clone()),
            client: Some(ClientIdentity {
                cert_file: pki.client.cert_file.clone(),
                key_file: stray_key,
            }),
        }),
        ..tls_settings(&cluster, &pki)
    })
    .await
    .expect_err("mismatched key");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            CoordError::Config {
                field: "key_file",
                ..
            }
        ) && msg.contains("stray.key")
            && msg.contains("client.crt"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_keeps_acting_and_writing_after_its_auth_tokens_expire() {
    let dir = tempdir();
    // Tokens expire after 2 s unused; the leader's lease outlives them many times.
    let (mut cluster, pki) = secure_cluster(dir.path(), Some(Duration::from_secs(2))).await;
    with_users(&cluster).await;
    let etcd = logged_in(dir.path(), &cluster, &pki).await;
    let leadership = lead(
        &etcd,
        &candidate("ctl-a", "us-east-1"),
        Duration::from_secs(10),
    )
    .await;
    let state = etcd.keys().service(SERVICE).expect("service").state();
    leadership
        .write(&FencedWrite::new().put(state.clone(), b"before".to_vec()))
        .await
        .expect("a fenced write");
    // Every member's client logs in (asking each for its status), so the members the
    // calls do not go to hold tokens that expire unused.
    for (endpoint, status) in etcd.member_status().await {
        status.unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }

    // Three token lifetimes without a call but the keep-alives.
    acting_throughout(&leadership, Duration::from_secs(6))
        .await
        .unwrap_or_else(|lasted| panic!("the leader stopped acting after {lasted:?}"));
    leadership
        .write(&FencedWrite::new().put(state.clone(), b"after".to_vec()))
        .await
        .expect("a fenced write after the token expired");
    // The expired token was renewed inside that call: the member was not taken for a
    // failed one (the keep-alives do not keep a token alive; etcd checks none on them).
    assert!(
        etcd.endpoint_health().iter().all(|h| h.failures == 0),
        "an expired token cost a member its place: {:?}",
        etcd.endpoint_health()
    );

    // The member that answered goes away: the next one's token, unused since the status
    // call, has expired too, and the write still goes through.
    let preferred = etcd
        .endpoint_health()
        .iter()
        .position(|h| !h.cooling_down && h.failures == 0)
        .expect("an endpoint");
    let member = cluster
        .member_of(&etcd.endpoint_health()[preferred].endpoint)
        .expect("a member");
    cluster.kill(member);
    let mut wrote = None;
    for _ in 0..10 {
        match leadership
            .write(&FencedWrite::new().put(state.clone(), b"elsewhere".to_vec()))
            .await
        {
            Ok(r) => {
                wrote = Some(r);
                break;
            }
            Err(e) => {
                eprintln!("write after losing member {member}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(wrote.is_some(), "no write went through another member");
    let held = etcd.get(&state).await.expect("get").expect("state");
    assert_eq!(held.value, b"elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_given_a_login_before_etcd_turns_authentication_on_keeps_writing_after() {
    let dir = tempdir();
    let (cluster, pki) = secure_cluster(dir.path(), None).await;
    // The order of a migration: lifeboat gets its user and password first, while etcd
    // still has authentication off, so no controller is locked out when it goes on.
    let etcd = logged_in(dir.path(), &cluster, &pki).await;
    let leadership = lead(
        &etcd,
        &candidate("ctl-a", "us-east-1"),
        Duration::from_secs(10),
    )
    .await;
    let state = etcd.keys().service(SERVICE).expect("service").state();
    leadership
        .write(&FencedWrite::new().put(state.clone(), b"auth off".to_vec()))
        .await
        .expect("a fenced write while authentication is off");

    with_users(&cluster).await;
    leadership
        .write(&FencedWrite::new().put(state.clone(), b"auth on".to_vec()))
        .await
        .expect("the first fenced write after authentication went on logs in and goes through");
    assert!(leadership.acting(), "the lease was kept throughout");
    let held = etcd.get(&state).await.expect("get").expect("state");
    assert_eq!(held.value, b"auth on");
}

/// A policy whose `[coordination]` reaches the secure cluster with the CA, the client
/// certificate and the `lifeboat` user (its password in a file), as an operator writes it.
fn tls_policy(dir: &Path, cluster: &EtcdCluster, pki: &Pki) -> PathBuf {
    let access = format!(
        "ca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nuser = \"lifeboat\"\npassword = {{ file = \"{password}\" }}",
        ca = pki.ca_file.display(),
        cert = pki.client.cert_file.display(),
        key = pki.client.key_file.display(),
        password = password_file(dir, PASSWORD).display(),
    );
    etcd_policy(dir, SERVICE, &cluster.endpoints(), &access, THREE_STEPS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_configured_by_the_policy_elect_one_leader_over_tls_and_fail_over_through_it() {
    let dir = tempdir();
    let (cluster, pki) = secure_cluster(dir.path(), None).await;
    with_users(&cluster).await;
    let policy = tls_policy(dir.path(), &cluster, &pki);

    let a = run_node(&policy, "ctl-a", dir.path(), &[]);
    let leading = |s: &lifeboat::daemon::status::StatusView| {
        matches!(s.leadership, Leadership::Leading { .. })
    };
    a.until("ctl-a elected over TLS", Duration::from_secs(30), leading)
        .await;
    let b = run_node(&policy, "ctl-b", dir.path(), &[]);
    b.until("ctl-b follows ctl-a", Duration::from_secs(30), |s| {
        s.leadership
            == Leadership::Following {
                leader: Some("ctl-a".into()),
            }
    })
    .await;

    // The leader's run writes its intent and outcomes fenced, over TLS and the login;
    // the follower learns the serving region from the shared record.
    let reply = reqwest::Client::new()
        .post(format!("{}/v1/failover", a.url))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({"by": "tests/coord_etcd_tls.rs"}))
        .send()
        .await
        .expect("failover on the leader");
    assert!(reply.status().is_success(), "{:?}", reply.text().await);
    let done = |s: &lifeboat::daemon::status::StatusView| {
        s.active.as_str() == "us-west-2" && s.current_run.is_none()
    };
    let sa = a
        .until(
            "ctl-a completes the failover",
            Duration::from_secs(30),
            done,
        )
        .await;
    assert_eq!(
        sa.last_run.map(|r| r.status.as_str().to_string()),
        Some("completed".to_string())
    );
    b.until(
        "ctl-b serves from the shared record",
        Duration::from_secs(30),
        done,
    )
    .await;
    let effects = std::fs::read_to_string(dir.path().join("effects")).unwrap_or_default();
    assert_eq!(effects.lines().collect::<Vec<_>>(), vec!["first", "third"]);

    for d in [&a, &b] {
        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
        assert!(!log.contains(PASSWORD), "the password is in {:?}", d.log);
    }
}
