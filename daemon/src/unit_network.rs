//! The systemd drop-in that opens the unit's IP sandbox for the network
//! outputs the configuration enables (`mdatpd unit-network`, run by the
//! package's systemd generator at boot and at `systemctl daemon-reload`).
//! The shipped unit has `IPAddressDeny=any`: without a network output the
//! sensor sends nothing over IP, and with one it may reach only that
//! output's addresses where they are addresses.

use std::net::IpAddr;

use crate::sink::OutputConfig;

/// `IPAddressAllow=` entries for the enabled network outputs; empty when
/// there is none (the unit stays closed).
pub fn allow_entries(config: &OutputConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for target in config.network_targets() {
        let entry = entry_for(&target);
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    if out.iter().any(|e| e == "any") {
        out.retain(|e| e == "any");
    }
    out
}

/// The drop-in's text, or None when no output leaves the host.
pub fn dropin(config: &OutputConfig) -> Option<String> {
    let entries = allow_entries(config);
    if entries.is_empty() {
        return None;
    }
    let targets = config.network_targets().join(", ");
    Some(format!(
        "# Written by `mdatpd unit-network` for the network outputs configured\n\
         # ({targets}); run `systemctl daemon-reload` after changing them.\n\
         [Service]\n\
         RestrictAddressFamilies=AF_INET AF_INET6\n\
         IPAddressAllow={}\n",
        entries.join(" ")
    ))
}

/// Where the package's generator writes the drop-in.
pub const DROPIN: &str = "/run/systemd/generator/mdatp.service.d/60-network-outputs.conf";

/// The `IPAddressAllow=` entry a target (`host:port` or a URL) needs.
fn entry_for(target: &str) -> String {
    let hostport = target.split_once("://").map_or(target, |(_, r)| r);
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) if host == "localhost" => "localhost".into(),
        Err(_) => "any".into(),
    }
}

/// For a failed connect to `target` by the service: when the unit's IP
/// sandbox does not allow that address yet (the generator's drop-in is
/// missing or names others), how to open it. The sandbox drops packets,
/// so the failure itself only says "timed out" or "not permitted".
pub fn hint(target: &str) -> String {
    // INVOCATION_ID: started by systemd, under the shipped unit's sandbox.
    if std::env::var_os("INVOCATION_ID").is_none() {
        return String::new();
    }
    let text = std::fs::read_to_string(DROPIN).unwrap_or_default();
    let entry = entry_for(target);
    let allowed = text
        .lines()
        .filter_map(|l| l.strip_prefix("IPAddressAllow="))
        .flat_map(|l| l.split_whitespace())
        .any(|a| a == entry || a == "any");
    if allowed {
        String::new()
    } else {
        format!(
            " (the unit's IP sandbox does not allow {entry} yet: run `systemctl daemon-reload && systemctl restart mdatp`; see mdatp.yaml(5), OUTPUTS)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_allowed_one_by_one_and_a_name_opens_the_unit() {
        let mut c = OutputConfig::default();
        assert!(dropin(&c).is_none(), "no network output: nothing opened");
        c.syslog.enabled = true;
        assert!(dropin(&c).is_none(), "a local socket is not IP");
        c.syslog.transport = crate::sink::SyslogTransport::Tls;
        c.syslog.address = "192.0.2.7:6514".into();
        c.nats.enabled = true;
        c.nats.servers = vec![
            "nats://[2001:db8::1]:4222".into(),
            "tls://localhost:4222".into(),
        ];
        assert_eq!(allow_entries(&c), ["192.0.2.7", "2001:db8::1", "localhost"]);
        let text = dropin(&c).unwrap_or_default();
        assert!(
            text.contains("IPAddressAllow=192.0.2.7 2001:db8::1 localhost\n"),
            "{text}"
        );
        c.nats.servers.push("nats://nats.example.org:4222".into());
        assert_eq!(allow_entries(&c), ["any"]);
    }
}
