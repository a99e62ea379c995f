//! API keys with roles, sent as `Authorization: Bearer <key>` (or, for pages a browser opens, as
//! the password of HTTP Basic authentication). Keys are compared in constant time and never
//! logged. A `store-system`, `marketing` or `planner` key may be scoped to brands: it acts only on
//! their stores and campaigns.

use super::error::ApiError;
use actix_web::HttpRequest;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who is calling.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Checkout,
    StoreSystem,
    Planner,
    /// Runs coupon campaigns.
    Marketing,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Checkout => "checkout",
            Role::StoreSystem => "store-system",
            Role::Planner => "planner",
            Role::Marketing => "marketing",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "checkout" => Role::Checkout,
            "store-system" => Role::StoreSystem,
            "planner" => Role::Planner,
            "marketing" => Role::Marketing,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// What a request wants to do; each endpoint needs one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Route, cancel or ship orders.
    Checkout,
    /// Read orders.
    ReadOrders,
    /// Send stock feeds.
    WriteStock,
    /// Read stock levels and stores.
    Read,
    /// Start and read batch plans.
    Plan,
    /// Operate the service (backups).
    Operate,
    /// Read the stock audit log (of the caller's brands).
    ReadAudit,
    /// Create and run coupon campaigns (of the caller's brands).
    Market,
    /// Capture and read a customer's coupons (on the shopper's behalf).
    Coupons,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::Checkout => "route, cancel or ship orders",
            Action::ReadOrders => "read orders",
            Action::WriteStock => "send stock feeds",
            Action::Read => "read stores and stock",
            Action::Plan => "start or read plans",
            Action::Operate => "operate the service",
            Action::ReadAudit => "read the stock audit log",
            Action::Market => "run coupon campaigns",
            Action::Coupons => "capture or read customers' coupons",
        }
    }

    /// The permission table: which roles may do what (admin may do everything).
    fn allowed(self, role: Role) -> bool {
        use Role::*;
        match self {
            _ if role == Admin => true,
            Action::Checkout => role == Checkout,
            Action::ReadOrders => matches!(role, Checkout | Planner),
            Action::WriteStock => role == StoreSystem,
            Action::Read => true,
            Action::Plan => role == Planner,
            Action::Operate => false,
            Action::ReadAudit => role == StoreSystem,
            Action::Market => role == Marketing,
            Action::Coupons => role == Checkout,
        }
    }
}

/// Who is calling: the key's role and, for a key scoped to brands, those brands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    brands: Brands,
    /// The key's id, for the audit log: a managed key's id, `bootstrap-<n>` for the n-th key of
    /// the environment or file (never the key).
    pub key_id: Arc<str>,
}

impl Caller {
    /// A caller with `role` over every brand (the fuzz harnesses; unscoped keys).
    pub fn unscoped(role: Role) -> Caller {
        Caller { role, brands: None, key_id: Arc::from("unscoped") }
    }

    /// A caller with `role` scoped to `brands`, known in the audit log as `key_id` (the broker's
    /// consumer acting for the brand of a message's subject).
    pub fn scoped(role: Role, brands: Vec<String>, key_id: String) -> Caller {
        Caller { role, brands: Some(brands.into()), key_id: Arc::from(key_id) }
    }

    /// The brands the caller is scoped to; `None`: every brand.
    pub fn brands(&self) -> Option<&[String]> {
        self.brands.as_deref()
    }

    /// Whether the caller may act for (and read) the stores of `brand`.
    pub fn may_act_for(&self, brand: &str) -> bool {
        self.brands.as_ref().is_none_or(|b| b.iter().any(|x| x == brand))
    }

    /// `Ok` when store `store` belongs to one of the caller's brands, else `brand_out_of_scope`
    /// naming `field`.
    pub fn check_store(&self, store: &optimizer::model::Store, field: &str) -> Result<(), ApiError> {
        if self.may_act_for(store.brand.as_str()) {
            Ok(())
        } else {
            Err(ApiError::BrandOutOfScope {
                field: field.to_string(),
                message: format!(
                    "store {} belongs to brand {}, which this key may not act for",
                    store.id, store.brand
                ),
            })
        }
    }
}

/// The brands a scoped key may act for (`None`: every brand).
type Brands = Option<Arc<[String]>>;

/// Configured keys: the bootstrap keys (role, key, brands) from the environment or a file, and
/// the keys managed over the API (shared by every clone, refreshed from storage).
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(Role, Vec<u8>, Brands)>,
    managed: Arc<parking_lot::RwLock<Vec<ManagedKey>>>,
}

/// Managed keys look like `omr_<id>_<secret>`: the id finds the record, the SHA-256 of the whole
/// key is compared in constant time.
pub const MANAGED_PREFIX: &str = "omr_";

/// A key created over the API, as stored: its SHA-256, never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManagedKey {
    pub id: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brands: Option<Vec<String>>,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the key works until then (a rotated key's overlap ends here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

impl ManagedKey {
    /// A new key for `role` over `brands`: the record and the key (shown once, never stored).
    pub fn create(
        role: Role,
        brands: Option<Vec<String>>,
        now: i64,
        expires_at: Option<i64>,
    ) -> (ManagedKey, String) {
        use rand::Rng;
        let mut rng = rand::rng();
        let id: String =
            (0..16).map(|_| char::from_digit(rng.random_range(0..16), 16).expect("a hex digit")).collect();
        let secret: String =
            (&mut rng).sample_iter(rand::distr::Alphanumeric).take(40).map(char::from).collect();
        let key = format!("{MANAGED_PREFIX}{id}_{secret}");
        let record = ManagedKey {
            id,
            role: role.name().to_string(),
            brands,
            sha256: hex_sha256(key.as_bytes()),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        (record, key)
    }

    /// Whether the key authenticates at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys themselves.
        let roles: Vec<&str> = self.keys.iter().map(|(r, ..)| r.name()).collect();
        f.debug_struct("ApiKeys").field("roles", &roles).finish()
    }
}

impl ApiKeys {
    /// Parses comma- or newline-separated `role:key` pairs (the `OMNIROUTE_API_KEYS` format). A
    /// `store-system`, `marketing` or `planner` key may name its brands: `store-system[brand-a|brand-b]:key`.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut keys = Vec::new();
        for (i, pair) in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty() && !p.starts_with('#'))
            .enumerate()
        {
            let (role, key) =
                pair.split_once(':').ok_or_else(|| format!("entry {} is not role:key", i + 1))?;
            let (role, brands) = match role.trim().split_once('[') {
                Some((role, rest)) => {
                    let list = rest.strip_suffix(']').ok_or_else(|| {
                        format!(
                            "entry {}: brands go in brackets, separated by |: role[brand|brand]:key",
                            i + 1
                        )
                    })?;
                    let brands: Vec<String> =
                        list.split('|').map(str::trim).filter(|b| !b.is_empty()).map(String::from).collect();
                    if brands.is_empty() {
                        return Err(format!("entry {}: a scoped key names at least one brand", i + 1));
                    }
                    (role, Some(Arc::from(brands)))
                }
                None => (role, None),
            };
            let role = Role::parse(role.trim()).ok_or_else(|| {
                format!(
                    "entry {}: unknown role `{}` (checkout, store-system, planner, marketing, admin)",
                    i + 1,
                    role.trim()
                )
            })?;
            let key = key.trim();
            if key.len() < 8 {
                return Err(format!("entry {}: keys must have at least 8 characters", i + 1));
            }
            if brands.is_some() && !matches!(role, Role::StoreSystem | Role::Planner | Role::Marketing) {
                return Err(format!(
                    "entry {}: only store-system, marketing and planner keys can be scoped to brands",
                    i + 1
                ));
            }
            keys.push((role, key.as_bytes().to_vec(), brands));
        }
        Ok(ApiKeys { keys, managed: Default::default() })
    }

    /// One random admin key, for a development start without configuration.
    pub fn development() -> (ApiKeys, String) {
        use rand::Rng;
        let key: String =
            rand::rng().sample_iter(rand::distr::Alphanumeric).take(32).map(char::from).collect();
        (
            ApiKeys { keys: vec![(Role::Admin, key.as_bytes().to_vec(), None)], managed: Default::default() },
            key,
        )
    }

    /// No key at all (bootstrap or managed).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.managed.read().is_empty()
    }

    /// Replaces the managed keys with `records` (as storage holds them).
    pub fn set_managed(&self, records: Vec<ManagedKey>) {
        *self.managed.write() = records;
    }

    /// The managed keys as they stand here.
    pub fn managed(&self) -> Vec<ManagedKey> {
        self.managed.read().clone()
    }

    /// A managed key's caller, when `token` is an active managed key at `now`.
    fn managed_caller(&self, token: &[u8], now: i64) -> Option<Caller> {
        let rest = std::str::from_utf8(token).ok()?.strip_prefix(MANAGED_PREFIX)?;
        let (id, _) = rest.split_once('_')?;
        let keys = self.managed.read();
        let k = keys.iter().find(|k| k.id == id)?;
        let hash = hex_sha256(token);
        if !bool::from(hash.as_bytes().ct_eq(k.sha256.as_bytes())) || !k.active(now) {
            return None;
        }
        Some(Caller {
            role: Role::parse(&k.role)?,
            brands: k.brands.clone().map(Arc::from),
            key_id: Arc::from(k.id.as_str()),
        })
    }

    /// The caller `token` identifies, comparing against every key in constant time.
    pub(crate) fn role_of(&self, token: &[u8]) -> Option<Caller> {
        let mut found = None;
        for (i, (role, key, brands)) in self.keys.iter().enumerate() {
            if bool::from(key.as_slice().ct_eq(token)) {
                found = Some(Caller {
                    role: *role,
                    brands: brands.clone(),
                    key_id: Arc::from(format!("bootstrap-{}", i + 1)),
                });
            }
        }
        found
    }

    /// Checks the request's key against `action`.
    pub fn authorize(&self, req: &HttpRequest, action: Action) -> Result<Caller, ApiError> {
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token: Vec<u8> = if let Some(t) = header.strip_prefix("Bearer ") {
            t.trim().as_bytes().to_vec()
        } else if let Some(b) = header.strip_prefix("Basic ") {
            // A browser's Basic credentials (the map page): the key is the password.
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| ApiError::Unauthorized)?;
            let colon = decoded.iter().position(|&c| c == b':').ok_or(ApiError::Unauthorized)?;
            decoded[colon + 1..].to_vec()
        } else {
            return Err(ApiError::Unauthorized);
        };
        let caller = self
            .role_of(&token)
            .or_else(|| self.managed_caller(&token, crate::service::now().0))
            .ok_or(ApiError::Unauthorized)?;
        if action.allowed(caller.role) {
            Ok(caller)
        } else {
            Err(ApiError::Forbidden { role: caller.role.name(), action: action.describe() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn parses_pairs_and_refuses_bad_entries() {
        let k = ApiKeys::parse("checkout:abcdefgh, admin:12345678\nplanner:plannerkey").unwrap();
        assert_eq!(k.keys.len(), 3);
        assert!(ApiKeys::parse("boss:abcdefgh").unwrap_err().contains("unknown role"));
        assert!(ApiKeys::parse("checkout").unwrap_err().contains("role:key"));
        assert!(ApiKeys::parse("checkout:short").unwrap_err().contains("8 characters"));
        assert!(!format!("{k:?}").contains("abcdefgh"));
    }

    #[test]
    fn scoped_keys_act_only_for_their_brands() {
        let k =
            ApiKeys::parse("store-system[nike|adidas]:store-key1,planner:plan-key1,store-system:all-key1")
                .unwrap();
        let req = |key: &str| {
            TestRequest::default().insert_header(("Authorization", format!("Bearer {key}"))).to_http_request()
        };
        let scoped = k.authorize(&req("store-key1"), Action::WriteStock).unwrap();
        assert!(scoped.may_act_for("nike") && scoped.may_act_for("adidas") && !scoped.may_act_for("puma"));
        assert!(!scoped.may_act_for("nik"), "brands compare whole");
        let all = k.authorize(&req("all-key1"), Action::WriteStock).unwrap();
        assert!(all.may_act_for("puma"));
        assert!(k.authorize(&req("plan-key1"), Action::Plan).unwrap().may_act_for("puma"));
        for (text, problem) in [
            ("checkout[nike]:abcdefgh", "only store-system, marketing and planner"),
            ("admin[nike]:abcdefgh", "only store-system, marketing and planner"),
            ("store-system[]:abcdefgh", "at least one brand"),
            ("store-system[nike:abcdefgh", "brackets"),
        ] {
            assert!(ApiKeys::parse(text).unwrap_err().contains(problem), "{text}");
        }
    }

    #[test]
    fn roles_follow_the_permission_table() {
        let k = ApiKeys::parse("checkout:checkout-key,store-system:store-key,admin:admin-key1").unwrap();
        let req = |key: &str| {
            TestRequest::default().insert_header(("Authorization", format!("Bearer {key}"))).to_http_request()
        };
        assert_eq!(k.authorize(&req("checkout-key"), Action::Checkout).map(|c| c.role), Ok(Role::Checkout));
        assert!(matches!(
            k.authorize(&req("checkout-key"), Action::WriteStock),
            Err(ApiError::Forbidden { .. })
        ));
        assert_eq!(k.authorize(&req("store-key"), Action::WriteStock).map(|c| c.role), Ok(Role::StoreSystem));
        assert_eq!(k.authorize(&req("admin-key1"), Action::WriteStock).map(|c| c.role), Ok(Role::Admin));
        assert_eq!(k.authorize(&req("nope-nope"), Action::Read), Err(ApiError::Unauthorized));
        assert_eq!(
            k.authorize(&TestRequest::default().to_http_request(), Action::Read),
            Err(ApiError::Unauthorized)
        );
    }
}
