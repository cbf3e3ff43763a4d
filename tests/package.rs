//! The Debian package and what it ships, checked by Debian's and systemd's own tools:
//! cargo-deb builds it (from the debug binary this test run built: a release build of
//! the AWS SDK does not fit CI's time, and the package is otherwise the same),
//! `dpkg-deb` unpacks it into a scratch root, `systemd-analyze verify` and
//! `systemd-analyze security --offline` judge the unit inside that root (no running
//! systemd needed), the maintainer scripts are run against a scratch root, bash completes
//! `lifeboat fa<TAB>` with the shipped completion, and groff reads every man page.
//!
//! Needs cargo-deb, dpkg-deb, systemd-analyze, man and groff: install-deps.sh installs them.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let name = format!("{cmd:?}");
    cmd.output().unwrap_or_else(|e| {
        panic!("{name}: {e}; run tests/setup/install-deps.sh to install the packaging tools")
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the package from this run's binary into `dir`; returns the .deb's path.
fn build_deb(dir: &Path) -> PathBuf {
    let out = ok(Command::new("deploy/debian/build-deb.sh")
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .arg(dir));
    PathBuf::from(out.trim())
}

#[test]
fn the_debian_package_installs_the_binary_its_docs_and_a_hardened_unit_that_systemd_accepts() {
    let tmp = support::tempdir();
    let deb = build_deb(&tmp.path().join("out"));
    assert!(
        deb.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("lifeboat_") && n.ends_with(".deb")),
        "{}",
        deb.display()
    );

    // The control file.
    let fields = ok(Command::new("dpkg-deb").arg("--field").arg(&deb));
    for needed in ["Package: lifeboat", "Section: admin", "Architecture: "] {
        assert!(fields.contains(needed), "no {needed:?} in:\n{fields}");
    }
    let depends = fields
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends in:\n{fields}"));
    assert!(depends.contains("adduser"), "{depends}");
    assert!(depends.contains("libc6"), "$auto found no libc: {depends}");

    // The files, with their modes.
    let listing = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let files: BTreeSet<(String, String)> = listing
        .lines()
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?.to_string();
            let path = l
                .split_whitespace()
                .last()?
                .trim_start_matches('.')
                .to_string();
            (!path.ends_with('/')).then_some((path, mode))
        })
        .collect();
    let has = |path: &str, mode: &str| {
        assert!(
            files.contains(&(path.to_string(), mode.to_string())),
            "no {path} ({mode}) in the package:\n{listing}"
        )
    };
    has("/usr/bin/lifeboat", "-rwxr-xr-x");
    has("/usr/lib/systemd/system/lifeboat@.service", "-rw-r--r--");
    has("/usr/lib/systemd/system/lifeboat.service", "-rw-r--r--");
    has("/usr/share/man/man1/lifeboat.1.gz", "-rw-r--r--");
    has("/usr/share/man/man1/lifeboat-run.1.gz", "-rw-r--r--");
    has("/usr/share/man/man1/lifeboat-failover.1.gz", "-rw-r--r--");
    has(
        "/usr/share/bash-completion/completions/lifeboat",
        "-rw-r--r--",
    );
    has("/usr/share/zsh/vendor-completions/_lifeboat", "-rw-r--r--");
    has(
        "/usr/share/fish/vendor_completions.d/lifeboat.fish",
        "-rw-r--r--",
    );
    has("/usr/share/lifeboat/policy.schema.json", "-rw-r--r--");
    has(
        "/usr/share/lifeboat/schemas/status.schema.json",
        "-rw-r--r--",
    );
    has("/usr/share/lifeboat/openapi.json", "-rw-r--r--");
    has(
        "/usr/share/lifeboat/prometheus/lifeboat-rules.yml",
        "-rw-r--r--",
    );
    has("/usr/share/lifeboat/grafana/lifeboat.json", "-rw-r--r--");
    has(
        "/usr/share/doc/lifeboat/examples/aurora-global.toml",
        "-rw-r--r--",
    );
    let unexpected: Vec<_> = files
        .iter()
        .filter(|(p, _)| !p.starts_with("/usr/"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "files outside /usr (the maintainer scripts make /etc/lifeboat and /var/lib/lifeboat): {unexpected:?}"
    );

    // The binary in the package runs and is stripped of debug info.
    let root = tmp.path().join("root");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let example =
        std::fs::read_to_string(root.join("usr/share/doc/lifeboat/examples/rds-replica.toml"))
            .expect("an example policy");
    assert!(
        example.starts_with("#:schema /usr/share/lifeboat/policy.schema.json\n"),
        "the packaged example should name the installed schema"
    );
    let version = ok(Command::new(root.join("usr/bin/lifeboat")).arg("--version"));
    assert!(version.starts_with("lifeboat "), "{version}");
    let sections = ok(Command::new("objdump")
        .arg("-h")
        .arg(root.join("usr/bin/lifeboat")));
    assert!(
        !sections.contains(".debug_line"),
        "the binary kept its debug info"
    );

    maintainer_scripts(&deb, tmp.path());
    unit_in_root(&root);
}

/// The unit files as the package installs them (one instance per service, and one
/// process for the whole directory), judged by systemd-analyze inside the scratch root
/// (which also holds the binary and the man page the units name).
fn unit_in_root(root: &Path) {
    unit_judged(
        root,
        "lifeboat@.service",
        "lifeboat@orders.service",
        "ExecStart=/usr/bin/lifeboat run --policy /etc/lifeboat/policies/%i.toml --state-dir /var/lib/lifeboat",
    );
    unit_judged(
        root,
        "lifeboat.service",
        "lifeboat.service",
        "ExecStart=/usr/bin/lifeboat run --policies /etc/lifeboat/policies --state-dir /var/lib/lifeboat",
    );
}

fn unit_judged(root: &Path, file: &str, name: &str, exec_start: &str) {
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system").join(file)).expect("the unit");
    for line in [
        "User=lifeboat",
        exec_start,
        "StateDirectory=lifeboat",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/lifeboat",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet=",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{file} has no line {line:?}"
        );
    }
    // systemd-analyze needs the system's own units (sysinit.target, …) in the root.
    let units = root.join("usr/lib/systemd/system");
    for dir in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let to = units.join(e.file_name());
            if !to.exists() && e.path().is_file() {
                std::fs::copy(e.path(), to).expect("copy a system unit");
            }
        }
    }
    // `man` runs on the host for Documentation=; MANPATH points it at the package's pages.
    let verify = run(Command::new("systemd-analyze")
        .args(["verify", "--root"])
        .arg(root)
        .arg(name)
        .env("MANPATH", root.join("usr/share/man")));
    // Unknown or misspelt settings are only warnings to systemd: any output fails.
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "systemd-analyze verify {name}:\n{}",
        text(&verify)
    );
    let security = run(Command::new("systemd-analyze")
        .args([
            "security",
            "--offline=yes",
            "--threshold=20",
            "--no-pager",
            "--root",
        ])
        .arg(root)
        .arg(name));
    let report = text(&security);
    assert!(
        security.status.success(),
        "{name}'s exposure is above 2.0 (\"OK\"; --threshold counts tenths):\n{report}"
    );
    assert!(report.contains("Overall exposure level"), "{report}");
}

/// The maintainer scripts: valid shell, and run against stand-ins for the tools they
/// call, they create the user once, and the directories with the right owners and modes.
fn maintainer_scripts(deb: &Path, tmp: &Path) {
    let control = tmp.join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    for script in ["postinst", "postrm"] {
        let path = control.join(script);
        assert!(path.exists(), "no {script} in the package");
        ok(Command::new("sh").arg("-n").arg(&path));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            !text.contains("#DEBHELPER#"),
            "cargo-deb left the token in {script}"
        );
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    assert!(postinst.contains("adduser --quiet --system"), "{postinst}");

    // getent knows a `lifeboat` user once adduser ran; everything else records its
    // arguments. Run twice: the second run must not add the user again.
    let bin = tmp.join("stub-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = tmp.join("calls.log");
    let stub = format!(
        "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> {log}\n\
         if [ \"$(basename \"$0\")\" = getent ]; then\n\
           case \"$1\" in passwd) grep -q '^adduser .* lifeboat$' {log};; group) grep -q '^addgroup .* lifeboat$' {log};; esac\n\
           exit $?\n\
         fi\n\
         exit 0\n",
        log = log.display()
    );
    for tool in [
        "getent",
        "addgroup",
        "adduser",
        "install",
        "systemctl",
        "deb-systemd-helper",
        "deb-systemd-invoke",
    ] {
        let p = bin.join(tool);
        std::fs::write(&p, &stub).expect("write stub");
        ok(Command::new("chmod").arg("755").arg(&p));
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    for _ in 0..2 {
        ok(Command::new("sh")
            .arg(control.join("postinst"))
            .arg("configure")
            .env("PATH", &path));
    }
    let calls = std::fs::read_to_string(&log).expect("calls");
    let count = |prefix: &str| calls.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("adduser --quiet --system"), 1, "{calls}");
    assert_eq!(count("addgroup --quiet --system lifeboat"), 1, "{calls}");
    assert!(
        calls.contains("install -d -o lifeboat -g lifeboat -m 0750 /var/lib/lifeboat"),
        "{calls}"
    );
    assert!(
        calls.contains(
            "install -d -o root -g lifeboat -m 0750 /etc/lifeboat /etc/lifeboat/policies"
        ),
        "{calls}"
    );
    ok(Command::new("sh")
        .arg(control.join("postrm"))
        .arg("remove")
        .env("PATH", &path));
}

#[test]
fn bash_completes_lifeboat_fa_to_failover_and_failback() {
    let tmp = support::tempdir();
    let script = tmp.path().join("lifeboat.bash");
    let out = run(Command::new(env!("CARGO_BIN_EXE_lifeboat")).args(["completions", "bash"]));
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&script, &out.stdout).expect("write");
    // What bash does on `lifeboat fa<TAB>`: the function `complete -F` registered is
    // called with the words so far.
    let complete = format!(
        "source {}\n\
         fn=$(complete -p lifeboat | sed -E 's/.*-F ([^ ]+).*/\\1/')\n\
         COMP_WORDS=(lifeboat fa); COMP_CWORD=1; COMP_LINE='lifeboat fa'; COMP_POINT=11\n\
         \"$fn\" lifeboat fa lifeboat\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = run(Command::new("bash").arg("-c").arg(&complete));
    assert!(out.status.success(), "{}", text(&out));
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    got.sort();
    assert_eq!(got, ["failback", "failover"], "{}", text(&out));

    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run(Command::new(env!("CARGO_BIN_EXE_lifeboat")).args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("failover"),
            "{shell}'s completion does not know failover"
        );
    }
}

#[test]
fn every_command_has_a_man_page_that_groff_reads_without_a_warning() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("man");
    ok(Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["man", "--out-dir"])
        .arg(&dir));
    let help = ok(Command::new(env!("CARGO_BIN_EXE_lifeboat")).arg("--help"));
    // The subcommands `--help` lists, each with its page.
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A description wrapped onto the next line is indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 15, "{commands:?}");
    for c in commands
        .iter()
        .map(|c| format!("lifeboat-{c}"))
        .chain(["lifeboat".into()])
    {
        let page = dir.join(format!("{c}.1"));
        assert!(page.exists(), "no man page {}", page.display());
        let out = run(Command::new("groff")
            // -k: preconv, as man runs it, for the non-ASCII characters of the help.
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&page));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {}: {}",
            page.display(),
            text(&out)
        );
    }
    let run_page = std::fs::read_to_string(dir.join("lifeboat-run.1")).expect("run page");
    assert!(
        run_page.contains("token"),
        "lifeboat-run(1) lacks its long help"
    );
}
