//! API keys with roles, sent as `Authorization: Bearer <key>`. Keys are compared in constant time
//! and never logged.

use super::error::ApiError;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

/// Who is calling.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Checkout,
    StoreSystem,
    Planner,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Checkout => "checkout",
            Role::StoreSystem => "store-system",
            Role::Planner => "planner",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "checkout" => Role::Checkout,
            "store-system" => Role::StoreSystem,
            "planner" => Role::Planner,
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
        }
    }
}

/// Configured keys.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(Role, Vec<u8>)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys themselves.
        let roles: Vec<&str> = self.keys.iter().map(|(r, _)| r.name()).collect();
        f.debug_struct("ApiKeys").field("roles", &roles).finish()
    }
}

impl ApiKeys {
    /// Parses comma- or newline-separated `role:key` pairs (the `OMNIROUTE_API_KEYS` format).
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
            let role = Role::parse(role.trim()).ok_or_else(|| {
                format!(
                    "entry {}: unknown role `{}` (checkout, store-system, planner, admin)",
                    i + 1,
                    role.trim()
                )
            })?;
            let key = key.trim();
            if key.len() < 8 {
                return Err(format!("entry {}: keys must have at least 8 characters", i + 1));
            }
            keys.push((role, key.as_bytes().to_vec()));
        }
        Ok(ApiKeys { keys })
    }

    /// One random admin key, for a development start without configuration.
    pub fn development() -> (ApiKeys, String) {
        use rand::Rng;
        let key: String =
            rand::rng().sample_iter(rand::distr::Alphanumeric).take(32).map(char::from).collect();
        (ApiKeys { keys: vec![(Role::Admin, key.as_bytes().to_vec())] }, key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The role of `token`, comparing against every key in constant time.
    pub(crate) fn role_of(&self, token: &[u8]) -> Option<Role> {
        let mut found = None;
        for (role, key) in &self.keys {
            if bool::from(key.as_slice().ct_eq(token)) {
                found = Some(*role);
            }
        }
        found
    }

    /// Checks the request's bearer token against `action`.
    pub fn authorize(&self, req: &HttpRequest, action: Action) -> Result<Role, ApiError> {
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
        let role = self.role_of(&token).ok_or(ApiError::Unauthorized)?;
        if action.allowed(role) {
            Ok(role)
        } else {
            Err(ApiError::Forbidden { role: role.name(), action: action.describe() })
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
    fn roles_follow_the_permission_table() {
        let k = ApiKeys::parse("checkout:checkout-key,store-system:store-key,admin:admin-key1").unwrap();
        let req = |key: &str| {
            TestRequest::default().insert_header(("Authorization", format!("Bearer {key}"))).to_http_request()
        };
        assert_eq!(k.authorize(&req("checkout-key"), Action::Checkout), Ok(Role::Checkout));
        assert!(matches!(
            k.authorize(&req("checkout-key"), Action::WriteStock),
            Err(ApiError::Forbidden { .. })
        ));
        assert_eq!(k.authorize(&req("store-key"), Action::WriteStock), Ok(Role::StoreSystem));
        assert_eq!(k.authorize(&req("admin-key1"), Action::WriteStock), Ok(Role::Admin));
        assert_eq!(k.authorize(&req("nope-nope"), Action::Read), Err(ApiError::Unauthorized));
        assert_eq!(
            k.authorize(&TestRequest::default().to_http_request(), Action::Read),
            Err(ApiError::Unauthorized)
        );
    }
}
