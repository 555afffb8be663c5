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
        let hostport = target.split_once("://").map_or(target.as_str(), |(_, r)| r);
        let host = hostport
            .rsplit_once(':')
            .map_or(hostport, |(h, _)| h)
            .trim_matches(|c| c == '[' || c == ']');
        let entry = match host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) if host == "localhost" => "localhost".into(),
            // A name is resolved at connect time, to addresses the unit
            // cannot know now, through a resolver it must reach too.
            Err(_) => "any".into(),
        };
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
         IPAddressAllow={}\n",
        entries.join(" ")
    ))
}

/// A connect refused by the unit's sandbox (IPAddressDeny answers EPERM)
/// says how to open it.
pub fn hint(error: &str) -> &'static str {
    if error.contains("Operation not permitted") {
        " (the unit's IP sandbox refused it: after enabling a network output run `systemctl daemon-reload && systemctl restart mdatp`, see mdatp.yaml(5) OUTPUTS)"
    } else {
        ""
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
