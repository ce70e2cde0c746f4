//! The Azure clouds where Key Vault serves secrets: their vault domains and the Entra ID
//! authority that issues tokens for them.
//!
//! A service principal or workload identity authenticates against one Entra ID authority;
//! azure_identity takes it from `AZURE_AUTHORITY_HOST` and otherwise uses the public
//! cloud's, whatever the vault. The provider derives the authority from the vault's domain
//! instead, and refuses an `AZURE_AUTHORITY_HOST` that names another cloud.

use azure_core::cloud::CloudConfiguration;

/// A cloud where Key Vault serves secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cloud {
    /// The cloud's name, for messages.
    pub(crate) name: &'static str,
    /// The host suffix of its vaults.
    pub(crate) vault_domain: &'static str,
    /// Its Entra ID authority host.
    pub(crate) authority: &'static str,
}

/// The clouds, by vault domain (Azure Germany, `vault.microsoftazure.de`, closed in 2021).
pub(crate) const CLOUDS: &[Cloud] = &[
    Cloud {
        name: "Azure public cloud",
        vault_domain: "vault.azure.net",
        authority: "https://login.microsoftonline.com",
    },
    Cloud {
        name: "Azure China cloud",
        vault_domain: "vault.azure.cn",
        authority: "https://login.chinacloudapi.cn",
    },
    Cloud {
        name: "Azure US Government cloud",
        vault_domain: "vault.usgovcloudapi.net",
        authority: "https://login.microsoftonline.us",
    },
];

/// Host suffixes that never serve secrets, and what to do instead (completes "has host X, …").
const REFUSED: &[(&str, &str)] = &[
    ("managedhsm.azure.net", MANAGED_HSM),
    ("managedhsm.chinacloudapi.cn", MANAGED_HSM),
    ("managedhsm.azure.cn", MANAGED_HSM),
    ("managedhsm.usgovcloudapi.net", MANAGED_HSM),
    (
        "vault.microsoftazure.de",
        "a vault of Azure Germany, which closed in October 2021; move the secrets to a vault of another cloud",
    ),
];

const MANAGED_HSM: &str =
    "a Managed HSM, which holds keys only, not secrets; use a Key Vault (https://NAME.vault.azure.net)";

impl Cloud {
    /// The azure_core cloud configuration of this cloud.
    pub(crate) fn configuration(&self) -> CloudConfiguration {
        match self.vault_domain {
            "vault.azure.cn" => CloudConfiguration::AzureChina,
            "vault.usgovcloudapi.net" => CloudConfiguration::AzureGovernment,
            _ => CloudConfiguration::AzurePublic,
        }
    }
}

/// Whether `host` is `domain` or below it, ignoring case.
fn under(host: &str, domain: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// The cloud and vault name of a host in one of the clouds' vault domains.
pub(crate) fn cloud_of(host: &str) -> Option<(&'static Cloud, String)> {
    let host = host.to_ascii_lowercase();
    CLOUDS.iter().find_map(|c| {
        host.strip_suffix(c.vault_domain)
            .and_then(|n| n.strip_suffix('.'))
            .map(|name| (c, name.to_string()))
    })
}

/// Why `host` can never serve secrets, if it cannot (completes "has host X, which is …").
pub(crate) fn refused(host: &str) -> Option<&'static str> {
    REFUSED.iter().find(|(d, _)| under(host, d)).map(|(_, why)| *why)
}

/// The cloud whose authority must issue tokens for the vault at `host`, given the
/// `AZURE_AUTHORITY_HOST` in effect: `None` for hosts outside the clouds' domains (left to
/// azure_identity); `Err` (completing "endpoint …") when the variable names another cloud
/// (an empty variable names none).
pub(crate) fn authority_for(host: &str, authority_env: Option<&str>) -> Result<Option<&'static Cloud>, String> {
    let Some((cloud, _)) = cloud_of(host) else {
        return Ok(None);
    };
    // Set but empty (as deployment templates often leave it) counts as unset: the cloud
    // configuration given to azure_identity overrides the variable anyway.
    if let Some(env) = authority_env.filter(|e| !e.trim().is_empty()) {
        let same = url::Url::parse(env)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .is_some_and(|h| cloud.authority.ends_with(&format!("//{h}")));
        if !same {
            return Err(format!(
                "is a vault of the {} but AZURE_AUTHORITY_HOST is {env:?}: tokens for this vault come from {}; unset \
                 AZURE_AUTHORITY_HOST or set it to that",
                cloud.name, cloud.authority
            ));
        }
    }
    Ok(Some(cloud))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_follows_the_vault_domain() {
        let of = |host, env| authority_for(host, env).map(|c| c.map(|c| c.authority));
        assert_eq!(
            of("kv1.vault.azure.cn", None),
            Ok(Some("https://login.chinacloudapi.cn"))
        );
        assert_eq!(
            of("kv1.vault.usgovcloudapi.net", None),
            Ok(Some("https://login.microsoftonline.us"))
        );
        assert_eq!(
            of("kv1.Vault.Azure.Net", None),
            Ok(Some("https://login.microsoftonline.com"))
        );
        assert_eq!(
            of("kv1.vault.azure.cn", Some("https://login.chinacloudapi.cn/")),
            Ok(Some("https://login.chinacloudapi.cn"))
        );
        let e = of("kv1.vault.azure.cn", Some("https://login.microsoftonline.com")).unwrap_err();
        assert!(
            e.contains("AZURE_AUTHORITY_HOST") && e.contains("login.chinacloudapi.cn"),
            "{e}"
        );
        assert_eq!(
            of("kv.corp.example", Some("https://login.microsoftonline.us")),
            Ok(None)
        );
        // Set but empty (as deployment templates leave it) is unset: the vault's cloud decides.
        for blank in ["", "  "] {
            assert_eq!(
                of("kv1.vault.azure.cn", Some(blank)),
                Ok(Some("https://login.chinacloudapi.cn")),
                "{blank:?}"
            );
        }
        assert!(matches!(
            cloud_of("kv1.vault.azure.cn").unwrap().0.configuration(),
            CloudConfiguration::AzureChina
        ));
    }

    #[test]
    fn managed_hsm_and_closed_clouds_are_refused() {
        for host in [
            "hsm1.managedhsm.azure.net",
            "hsm1.managedhsm.chinacloudapi.cn",
            "hsm1.managedhsm.usgovcloudapi.net",
            "kv1.vault.microsoftazure.de",
        ] {
            assert!(refused(host).is_some(), "{host}");
            assert!(cloud_of(host).is_none(), "{host}");
        }
        assert!(refused("kv1.vault.azure.net").is_none());
    }
}
