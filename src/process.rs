//! Facts about processes on this host, shared by the daemon's discovery (is the daemon
//! that published its address still alive?) and the sandbox (are its servers?).

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| state != Some('Z'))
}
