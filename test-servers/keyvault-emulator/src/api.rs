//! The secrets data plane: routes, request bodies and the service's JSON shapes.

use std::collections::BTreeMap;

use hyper::Method;
use rand::RngExt as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Action;
use crate::error::ApiError;
use crate::paging;
use crate::rules;
use crate::store::{DeletedView, NewVersion, Now, SoftDelete, Update, Vault, View};

/// One data-plane operation, parsed from method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `GET /secrets`
    List,
    /// `GET /secrets/{name}/versions`
    ListVersions(String),
    /// `PUT /secrets/{name}`
    Set(String),
    /// `GET /secrets/{name}[/][{version}]`
    Get(String, Option<String>),
    /// `PATCH /secrets/{name}[/][{version}]`
    Update(String, Option<String>),
    /// `DELETE /secrets/{name}`
    Delete(String),
    /// `GET /deletedsecrets`
    ListDeleted,
    /// `GET /deletedsecrets/{name}`
    GetDeleted(String),
    /// `DELETE /deletedsecrets/{name}`
    Purge(String),
    /// `POST /deletedsecrets/{name}/recover`
    Recover(String),
    /// `POST /secrets/{name}/backup`, `POST /secrets/restore` (left out).
    Unsupported(&'static str),
}

impl Op {
    /// Parses a request line; unknown paths are 404, known paths with other methods 405.
    pub fn parse(method: &Method, path: &str) -> Result<Self, ApiError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let name = |s: &str| s.to_owned();
        let version = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let op = match (segments.as_slice(), method) {
            (["secrets"] | ["secrets", ""], &Method::GET) => Self::List,
            (["secrets"] | ["secrets", ""], _) => return Err(ApiError::method_not_allowed()),
            (["secrets", "restore"], &Method::POST) => Self::Unsupported("restore"),
            (["secrets", n], &Method::PUT) => Self::Set(name(n)),
            (["secrets", n], &Method::GET) => Self::Get(name(n), None),
            (["secrets", n], &Method::PATCH) => Self::Update(name(n), None),
            (["secrets", n], &Method::DELETE) => Self::Delete(name(n)),
            (["secrets", n, "versions"], &Method::GET) => Self::ListVersions(name(n)),
            (["secrets", _, "backup"], &Method::POST) => Self::Unsupported("backup"),
            (["secrets", n, v], &Method::GET) => Self::Get(name(n), version(v)),
            (["secrets", n, v], &Method::PATCH) => Self::Update(name(n), version(v)),
            (["deletedsecrets"] | ["deletedsecrets", ""], &Method::GET) => Self::ListDeleted,
            (["deletedsecrets", n], &Method::GET) => Self::GetDeleted(name(n)),
            (["deletedsecrets", n], &Method::DELETE) => Self::Purge(name(n)),
            (["deletedsecrets", n, "recover"], &Method::POST) => Self::Recover(name(n)),
            (["secrets", ..] | ["deletedsecrets", ..], _) if segments.len() <= 3 => {
                return Err(ApiError::method_not_allowed());
            }
            _ => return Err(ApiError::unknown_path(path)),
        };
        Ok(op)
    }

    /// The RBAC data action the operation needs.
    pub fn action(&self) -> Action {
        match self {
            Self::Get(..) => Action::GetSecret,
            Self::List | Self::ListVersions(_) | Self::ListDeleted | Self::GetDeleted(_) => Action::ReadMetadata,
            Self::Set(_) | Self::Unsupported(_) => Action::SetSecret,
            Self::Update(..) => Action::Update,
            Self::Delete(_) => Action::Delete,
            Self::Recover(_) => Action::Recover,
            Self::Purge(_) => Action::Purge,
        }
    }

    /// Whether the operation answers a page.
    pub fn is_list(&self) -> bool {
        matches!(self, Self::List | Self::ListVersions(_) | Self::ListDeleted)
    }

    /// Whether the operation reads a JSON body.
    pub fn has_body(&self) -> bool {
        matches!(self, Self::Set(_) | Self::Update(..))
    }

    /// The secret name the operation addresses, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::ListVersions(n)
            | Self::Set(n)
            | Self::Get(n, _)
            | Self::Update(n, _)
            | Self::Delete(n)
            | Self::GetDeleted(n)
            | Self::Purge(n)
            | Self::Recover(n) => Some(n),
            Self::List | Self::ListDeleted | Self::Unsupported(_) => None,
        }
    }
}

/// The `api-version` values the service documents for the secrets data plane (and the
/// previews the SDKs have sent); anything else is refused as the service refuses it.
pub const API_VERSIONS: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.0-preview",
    "7.1",
    "7.1-preview",
    "7.2",
    "7.2-preview",
    "7.3",
    "7.3-preview",
    "7.4",
    "7.4-preview.1",
    "7.5",
    "7.5-preview.1",
    "7.6",
    "7.6-preview.1",
    "7.6-preview.2",
    "2025-06-01-preview",
    "2025-07-01",
    "2026-04-01",
];

/// The newest stable version, which the refusal of an unknown one recommends.
pub const LATEST_API_VERSION: &str = "2026-04-01";

/// Checks `api-version`: present (400 `BadParameter` otherwise) and one the service knows
/// (400 `BadParameter` "The specified version (…) is not recognized…" otherwise).
pub fn check_api_version(query: &BTreeMap<String, String>) -> Result<(), ApiError> {
    match query.get("api-version").map(String::as_str) {
        None | Some("") => Err(ApiError::bad_parameter("The api-version query parameter is missing.")),
        Some(given) if API_VERSIONS.contains(&given) => Ok(()),
        Some(given) => Err(ApiError::unknown_api_version(given, LATEST_API_VERSION)),
    }
}

/// What a request needs besides the vault: where it came in, its query, its body.
#[derive(Debug)]
pub struct Call<'a> {
    /// `https://HOST[:PORT]` as the client addressed the vault (ids and `nextLink` use it).
    pub base: &'a str,
    /// The request path (for `nextLink`).
    pub path: &'a str,
    /// Decoded query pairs.
    pub query: &'a BTreeMap<String, String>,
    /// The request body.
    pub body: &'a [u8],
    /// Answer list requests with an empty page (fault injection).
    pub empty_page: bool,
    /// The time of the request.
    pub now: Now,
}

/// A successful answer.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// 200 with a JSON body.
    Json(Value),
    /// 204 without a body.
    NoContent,
}

/// Runs an operation against a vault.
pub fn execute(op: &Op, vault: &mut Vault, call: &Call<'_>) -> Result<Reply, ApiError> {
    if let Some(name) = op.name() {
        rules::check_name(name)?;
    }
    let sd = vault.soft_delete();
    let now = call.now;
    let json = |view: &View, with_value: bool| Reply::Json(bundle(call.base, view, sd, with_value));
    match op {
        Op::Set(name) => {
            let body: SetBody = parse_body(call.body)?;
            let new = body.into_new_version()?;
            Ok(json(&vault.set(name, new, new_version_id(), now)?, true))
        }
        Op::Get(name, version) => Ok(json(&vault.get(name, version.as_deref(), now)?, true)),
        Op::Update(name, version) => {
            let body: UpdateBody = parse_body(call.body)?;
            let update = body.into_update()?;
            Ok(json(&vault.update(name, version.as_deref(), update, now)?, false))
        }
        Op::List => {
            let items = vault.list(now);
            list_page(call, items, |view| item(call.base, view, sd, false))
        }
        Op::ListVersions(name) => {
            let items = vault.versions(name, now)?;
            list_page(call, items, |view| item(call.base, view, sd, true))
        }
        Op::Delete(name) => Ok(Reply::Json(deleted(call.base, &vault.delete(name, now)?, sd, true))),
        Op::GetDeleted(name) => Ok(Reply::Json(deleted(
            call.base,
            &vault.get_deleted(name, now)?,
            sd,
            true,
        ))),
        Op::ListDeleted => {
            let items = vault.list_deleted(now);
            list_page(call, items, |view| deleted(call.base, view, sd, false))
        }
        Op::Recover(name) => Ok(json(&vault.recover(name, now)?, false)),
        Op::Purge(name) => vault.purge(name, now).map(|()| Reply::NoContent),
        Op::Unsupported(what) => Err(ApiError::not_implemented(what)),
    }
}

fn list_page<T>(call: &Call<'_>, items: Vec<(String, T)>, render: impl Fn(&T) -> Value) -> Result<Reply, ApiError> {
    let max_raw = call.query.get("maxresults").map(String::as_str);
    let max = paging::max_results(max_raw)?;
    let after = match call.query.get("$skiptoken") {
        Some(token) => Some(paging::decode_token(token)?),
        None => None,
    };
    let page = paging::page(items, after.as_deref(), max, call.empty_page);
    let next_link = page.next.map(|token| {
        let api_version = call.query.get("api-version").map_or("", String::as_str);
        let mut link = format!(
            "{}{}?api-version={api_version}&$skiptoken={token}",
            call.base, call.path
        );
        if let Some(max) = max_raw {
            link.push_str(&format!("&maxresults={max}"));
        }
        link
    });
    let value: Vec<Value> = page.items.iter().map(render).collect();
    Ok(Reply::Json(json!({ "value": value, "nextLink": next_link })))
}

/// A fresh 32-hex version id.
pub fn new_version_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_parameter(format!("The request body is not valid: {e}")))
}

#[derive(Debug, Default, Deserialize)]
struct AttributesBody {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct SetBody {
    value: Option<String>,
    #[serde(flatten)]
    properties: UpdateBody,
}

impl SetBody {
    fn into_new_version(self) -> Result<NewVersion, ApiError> {
        let value = self
            .value
            .ok_or_else(|| ApiError::bad_parameter("Property value is required."))?;
        rules::check_value(&value)?;
        let update = self.properties.into_update()?;
        Ok(NewVersion {
            value,
            content_type: update.content_type,
            tags: update.tags.unwrap_or_default(),
            enabled: update.enabled,
            nbf: update.nbf,
            exp: update.exp,
        })
    }
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    attributes: Option<AttributesBody>,
    tags: Option<BTreeMap<String, String>>,
}

impl UpdateBody {
    fn into_update(self) -> Result<Update, ApiError> {
        if let Some(tags) = &self.tags {
            rules::check_tags(tags)?;
        }
        if let Some(content_type) = &self.content_type {
            rules::check_content_type(content_type)?;
        }
        let attributes = self.attributes.unwrap_or_default();
        Ok(Update {
            content_type: self.content_type,
            tags: self.tags,
            enabled: attributes.enabled,
            nbf: attributes.nbf,
            exp: attributes.exp,
        })
    }
}

fn attributes(view: &View, sd: SoftDelete) -> Value {
    let v = &view.version;
    let mut a = json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": sd.recovery_level(),
        "recoverableDays": sd.recoverable_days,
    });
    if let Some(nbf) = v.nbf {
        a["nbf"] = json!(nbf);
    }
    if let Some(exp) = v.exp {
        a["exp"] = json!(exp);
    }
    a
}

/// `SecretItem`: id (with or without version), attributes, tags, contentType.
fn item(base: &str, view: &View, sd: SoftDelete, with_version: bool) -> Value {
    let mut id = format!("{base}/secrets/{}", view.name);
    if with_version {
        id = format!("{id}/{}", view.version.id);
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("attributes".into(), attributes(view, sd));
    if view.managed {
        out.insert("managed".into(), json!(true));
    }
    if !view.version.tags.is_empty() {
        out.insert("tags".into(), json!(view.version.tags));
    }
    if let Some(content_type) = &view.version.content_type {
        out.insert("contentType".into(), json!(content_type));
    }
    Value::Object(out)
}

/// `SecretBundle`: an item with the version in its id, and the value where asked.
pub fn bundle(base: &str, view: &View, sd: SoftDelete, with_value: bool) -> Value {
    let mut out = item(base, view, sd, true);
    if with_value {
        out["value"] = json!(view.version.value);
    }
    if view.managed {
        out["kid"] = json!(format!("{base}/keys/{}/{}", view.name, view.version.id));
    }
    out
}

/// `DeletedSecretBundle` (full) or `DeletedSecretItem` (list): never the value.
fn deleted(base: &str, d: &DeletedView, sd: SoftDelete, full: bool) -> Value {
    let mut out = item(base, &d.view, sd, full);
    out["recoveryId"] = json!(format!("{base}/deletedsecrets/{}", d.view.name));
    out["deletedDate"] = json!(d.deleted_date);
    out["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
    out
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(method: Method, path: &str) -> Result<Op, u16> {
        Op::parse(&method, path).map_err(|e| e.status)
    }

    #[test]
    fn routes_match_the_sdks_paths() {
        assert_eq!(parse(Method::GET, "/secrets"), Ok(Op::List));
        assert_eq!(parse(Method::GET, "/secrets/a/"), Ok(Op::Get("a".into(), None)));
        assert_eq!(parse(Method::GET, "/secrets/a"), Ok(Op::Get("a".into(), None)));
        assert_eq!(
            parse(Method::GET, "/secrets/a/v1"),
            Ok(Op::Get("a".into(), Some("v1".into())))
        );
        assert_eq!(parse(Method::PATCH, "/secrets/a/"), Ok(Op::Update("a".into(), None)));
        assert_eq!(parse(Method::PUT, "/secrets/a"), Ok(Op::Set("a".into())));
        assert_eq!(
            parse(Method::GET, "/secrets/a/versions"),
            Ok(Op::ListVersions("a".into()))
        );
        assert_eq!(parse(Method::DELETE, "/secrets/a"), Ok(Op::Delete("a".into())));
        assert_eq!(parse(Method::GET, "/deletedsecrets"), Ok(Op::ListDeleted));
        assert_eq!(parse(Method::DELETE, "/deletedsecrets/a"), Ok(Op::Purge("a".into())));
        assert_eq!(
            parse(Method::POST, "/deletedsecrets/a/recover"),
            Ok(Op::Recover("a".into()))
        );
        assert_eq!(parse(Method::PUT, "/secrets/"), Err(405));
        assert_eq!(parse(Method::GET, "/keys/a"), Err(404));
        assert_eq!(parse(Method::GET, "/secrets/a/b/c"), Err(404));
    }

    #[test]
    fn list_answers_absolute_next_links_that_round_trip() {
        let now = Now::current();
        let mut vault = Vault::new(SoftDelete::without_delays(7));
        for i in 0..3 {
            let body = br#"{"value":"v","tags":{"t":"1"}}"#;
            let query = BTreeMap::new();
            let call = Call {
                base: "https://v.localhost:1",
                path: "/secrets/x",
                query: &query,
                body,
                empty_page: false,
                now,
            };
            execute(&Op::Set(format!("s{i}")), &mut vault, &call).unwrap();
        }
        let mut query = BTreeMap::from([
            ("api-version".to_owned(), "7.6".to_owned()),
            ("maxresults".into(), "2".into()),
        ]);
        fn call(query: &BTreeMap<String, String>, now: Now) -> Call<'_> {
            Call {
                base: "https://v.localhost:1",
                path: "/secrets",
                query,
                body: b"",
                empty_page: false,
                now,
            }
        }
        let Reply::Json(first) = execute(&Op::List, &mut vault, &call(&query, now)).unwrap() else {
            panic!()
        };
        assert_eq!(first["value"].as_array().unwrap().len(), 2);
        assert_eq!(first["value"][0]["id"], "https://v.localhost:1/secrets/s0");
        assert!(first["value"][0].get("value").is_none());
        let next = first["nextLink"].as_str().unwrap();
        assert!(
            next.starts_with("https://v.localhost:1/secrets?api-version=7.6&$skiptoken="),
            "{next}"
        );
        assert!(next.ends_with("&maxresults=2"));
        let token = next.split("$skiptoken=").nth(1).unwrap().split('&').next().unwrap();
        query.insert("$skiptoken".into(), token.into());
        let Reply::Json(second) = execute(&Op::List, &mut vault, &call(&query, now)).unwrap() else {
            panic!()
        };
        assert_eq!(second["value"][0]["id"], "https://v.localhost:1/secrets/s2");
        assert!(second["nextLink"].is_null());
    }

    #[test]
    fn bodies_are_checked() {
        let now = Now::current();
        let mut vault = Vault::new(SoftDelete::without_delays(7));
        let query = BTreeMap::new();
        let run = |vault: &mut Vault, op: Op, body: &[u8]| {
            let call = Call {
                base: "https://v.localhost:1",
                path: "/",
                query: &query,
                body,
                empty_page: false,
                now,
            };
            execute(&op, vault, &call)
        };
        assert_eq!(run(&mut vault, Op::Set("a".into()), b"{}").unwrap_err().status, 400);
        assert_eq!(
            run(&mut vault, Op::Set("a".into()), b"not json").unwrap_err().status,
            400
        );
        assert_eq!(
            run(&mut vault, Op::Set("a_b".into()), br#"{"value":""}"#)
                .unwrap_err()
                .status,
            400
        );
        let Reply::Json(set) = run(
            &mut vault,
            Op::Set("a".into()),
            br#"{"value":"","attributes":{"exp":5}}"#,
        )
        .unwrap() else {
            panic!()
        };
        let id = set["id"].as_str().unwrap();
        let version = id.rsplit('/').next().unwrap();
        assert_eq!(version.len(), 32);
        assert!(
            version
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(set["attributes"]["exp"], 5);
        assert!(set["attributes"]["created"].is_i64());
        let Reply::Json(updated) = run(&mut vault, Op::Update("A".into(), None), br#"{"contentType":"text"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(updated["contentType"], "text");
        assert!(updated.get("value").is_none());
    }
}
