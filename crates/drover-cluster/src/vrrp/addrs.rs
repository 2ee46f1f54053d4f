//! Which addresses an interface holds, from `ip -j addr show dev IF` (iproute2's JSON): how the
//! status tells the VIPs this node really holds, whatever keepalived believes.

use std::net::IpAddr;

use serde::Deserialize;

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    local: Option<String>,
}

/// The addresses in `ip -j addr show` output.
pub fn parse(json: &[u8]) -> Result<Vec<IpAddr>, String> {
    let links: Vec<Link> =
        serde_json::from_slice(json).map_err(|e| format!("unexpected `ip -j addr` output: {e}"))?;
    Ok(links
        .iter()
        .flat_map(|l| l.addr_info.iter())
        .filter_map(|a| a.local.as_deref()?.parse().ok())
        .collect())
}

/// The addresses `interface` holds now (runs `ip`; blocks for a few milliseconds).
pub fn held(interface: &str) -> Result<Vec<IpAddr>, String> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show", "dev", interface])
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip -j addr show dev {interface}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse(&out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ipv4_and_ipv6_addresses() {
        let json = br#"[{"ifindex":2,"ifname":"eth0","flags":["UP"],"addr_info":[
            {"family":"inet","local":"10.77.0.1","prefixlen":24,"scope":"global"},
            {"family":"inet","local":"10.77.0.100","prefixlen":24,"scope":"global","secondary":true},
            {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#;
        let got = parse(json).unwrap();
        let want: Vec<IpAddr> = ["10.77.0.1", "10.77.0.100", "fe80::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(parse(b"[]").unwrap(), Vec::<IpAddr>::new());
        assert!(parse(b"not json").is_err());
    }
}
