//! The apps a node has served, what each may do, and the payments apps ask
//! for.
//!
//! Apps carry no API token. Reading is open to them (topics, content, the
//! chain), but spending is not: an app's payment request waits here, pending,
//! until the user approves or denies it in the dashboard — unless the user
//! granted that app the `payments: allow` capability, and then only up to
//! the limit given with it. Adding content to the node (an app's upload) is
//! refused unless the user granted the app `uploads: allow`, and then only
//! up to [`MAX_APP_UPLOAD`] bytes each. Permissions persist in `apps.json`
//! in the data dir (written atomically); requests live in memory and are
//! bounded.

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use weft_ledger::Address;

/// Most apps remembered.
const MAX_APPS: usize = 1_000;
/// Most payment requests kept (oldest decided ones go first).
const MAX_REQUESTS: usize = 200;
/// Most pending requests per app.
const MAX_PENDING_PER_APP: usize = 10;
/// Longest memo an app may attach.
pub const MAX_MEMO: usize = 256;
/// Largest single upload by an app allowed to add content.
pub const MAX_APP_UPLOAD: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PaymentPermission {
    /// Every payment waits for the user's approval.
    #[default]
    Ask,
    /// Payments up to `max_amount` go through without asking.
    Allow,
}

/// Whether an app may add content to the node (its uploads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UploadPermission {
    /// Uploads are refused.
    #[default]
    Deny,
    /// Uploads of up to [`MAX_APP_UPLOAD`] bytes each are stored.
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Permissions {
    pub payments: PaymentPermission,
    /// With `allow`: the largest single payment made without asking.
    #[serde(default)]
    pub max_amount: u64,
    #[serde(default)]
    pub uploads: UploadPermission,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppInfo {
    pub hash: String,
    pub name: Option<String>,
    pub permissions: Permissions,
    /// Unix seconds.
    pub last_used: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    /// Approved and being signed.
    Approved,
    Sent,
    Denied,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentRequest {
    pub id: u64,
    pub app: String,
    pub to: Address,
    pub amount: u64,
    pub fee: u64,
    pub memo: String,
    pub status: RequestStatus,
    pub txid: Option<String>,
    pub error: Option<String>,
    pub created: u64,
    /// Whether the app's capability let it through without asking.
    pub auto: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppsError {
    #[error("not an app hash (64 hex characters): {0}")]
    BadHash(String),
    #[error("the amount must be more than zero")]
    ZeroAmount,
    #[error("the memo is longer than {MAX_MEMO} bytes")]
    MemoTooLong,
    #[error("this app already has {MAX_PENDING_PER_APP} payment requests waiting")]
    TooManyPending,
    #[error("no such payment request: {0}")]
    NoSuchRequest(u64),
    #[error("payment request {0} was already decided")]
    AlreadyDecided(u64),
    #[error("cannot save app permissions: {0}")]
    Save(String),
}

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    apps: BTreeMap<String, AppInfo>,
}

#[derive(Default)]
struct State {
    apps: BTreeMap<String, AppInfo>,
    requests: VecDeque<PaymentRequest>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct Apps {
    state: Arc<Mutex<State>>,
    file: Option<PathBuf>,
    wallets: Option<PathBuf>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The DNS label of an app's origin: its hash in lowercase base32 without
/// padding (52 characters; a DNS label holds at most 63, so the 64 hex
/// characters of a hash would not resolve), as IPFS subdomain gateways do.
pub fn origin_label(hash_hex: &str) -> Option<String> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hash_hex.as_bytes())
        .ok()?;
    (bytes.len() == 32).then(|| {
        data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase()
    })
}

/// The app hash (hex) named by an origin's DNS label: the base32 form of
/// [`origin_label`], or (for tools that send any Host) the hex form.
pub fn hash_of_label(label: &str) -> Option<String> {
    let label = label.to_ascii_lowercase();
    if check_hash(&label).is_ok() {
        return Some(label);
    }
    let bytes = data_encoding::BASE32_NOPAD
        .decode(label.to_ascii_uppercase().as_bytes())
        .ok()?;
    (bytes.len() == 32).then(|| data_encoding::HEXLOWER.encode(&bytes))
}

/// The URL of an app on its own origin, on a node whose API listens on `port`.
pub fn app_url(hash_hex: &str, port: &str) -> String {
    let label = origin_label(hash_hex).unwrap_or_else(|| hash_hex.to_owned());
    format!("http://{label}.app.localhost:{port}/")
}

/// Checks an app hash: 64 lowercase hex characters.
pub fn check_hash(hash: &str) -> Result<(), AppsError> {
    if hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(AppsError::BadHash(hash.chars().take(80).collect()))
    }
}

impl Apps {
    /// Opens the registry kept in `<data_dir>/apps.json` (a missing file
    /// starts empty; an unreadable one is left in place and logged). The
    /// node's wallets, which pay approved requests, are in
    /// `<data_dir>/wallets`.
    pub fn open(data_dir: &std::path::Path) -> Self {
        let file = data_dir.join("apps.json");
        let apps = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(s) => s.apps,
                Err(e) => {
                    tracing::warn!(file = %file.display(), "ignoring unreadable app permissions: {e}");
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        Self {
            state: Arc::new(Mutex::new(State {
                apps,
                requests: VecDeque::new(),
                next_id: 1,
            })),
            file: Some(file),
            wallets: Some(data_dir.join("wallets")),
        }
    }

    /// Where the node's wallets are, if it has a data dir.
    pub fn wallet_dir(&self) -> Option<&std::path::Path> {
        self.wallets.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn save(&self, state: &State) -> Result<(), AppsError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let saved = Saved {
            apps: state.apps.clone(),
        };
        let bytes =
            serde_json::to_vec_pretty(&saved).map_err(|e| AppsError::Save(e.to_string()))?;
        let tmp = file.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, file)
        };
        write().map_err(|e| AppsError::Save(format!("{}: {e}", file.display())))
    }

    /// Records that the app `hash` was served (for the dashboard's list).
    pub fn visit(&self, hash: &str, name: Option<String>) {
        let mut s = self.lock();
        let t = now();
        if let Some(app) = s.apps.get_mut(hash) {
            // Every file an app loads passes here: only a new name is worth
            // a write to disk; the time of use is saved with the next write.
            app.last_used = t;
            if name.is_none() || app.name == name {
                return;
            }
            app.name = name;
        } else {
            if s.apps.len() >= MAX_APPS {
                // Forget the least recently used app that has no grants.
                let oldest = s
                    .apps
                    .values()
                    .filter(|a| a.permissions == Permissions::default())
                    .min_by_key(|a| a.last_used)
                    .map(|a| a.hash.clone());
                match oldest {
                    Some(h) => {
                        s.apps.remove(&h);
                    }
                    None => return,
                }
            }
            s.apps.insert(
                hash.to_owned(),
                AppInfo {
                    hash: hash.to_owned(),
                    name,
                    permissions: Permissions::default(),
                    last_used: t,
                },
            );
        }
        if let Err(e) = self.save(&s) {
            tracing::warn!("{e}");
        }
    }

    pub fn list(&self) -> Vec<AppInfo> {
        let mut v: Vec<AppInfo> = self.lock().apps.values().cloned().collect();
        v.sort_by_key(|a| std::cmp::Reverse(a.last_used));
        v
    }

    pub fn permissions(&self, hash: &str) -> Permissions {
        self.lock()
            .apps
            .get(hash)
            .map(|a| a.permissions.clone())
            .unwrap_or_default()
    }

    pub fn set_permissions(
        &self,
        hash: &str,
        permissions: Permissions,
    ) -> Result<AppInfo, AppsError> {
        check_hash(hash)?;
        let mut s = self.lock();
        let app = s.apps.entry(hash.to_owned()).or_insert_with(|| AppInfo {
            hash: hash.to_owned(),
            name: None,
            permissions: Permissions::default(),
            last_used: now(),
        });
        app.permissions = permissions;
        let info = app.clone();
        self.save(&s)?;
        Ok(info)
    }

    /// An app asks to pay. The request is pending unless the app's
    /// capability covers it, in which case it comes back `Approved` and the
    /// caller sends it at once.
    pub fn request_payment(
        &self,
        app: &str,
        to: Address,
        amount: u64,
        fee: u64,
        memo: String,
    ) -> Result<PaymentRequest, AppsError> {
        check_hash(app)?;
        if amount == 0 {
            return Err(AppsError::ZeroAmount);
        }
        if memo.len() > MAX_MEMO {
            return Err(AppsError::MemoTooLong);
        }
        let perms = self.permissions(app);
        let auto = perms.payments == PaymentPermission::Allow && amount <= perms.max_amount;
        let mut s = self.lock();
        let pending = s
            .requests
            .iter()
            .filter(|r| r.app == app && r.status == RequestStatus::Pending)
            .count();
        if !auto && pending >= MAX_PENDING_PER_APP {
            return Err(AppsError::TooManyPending);
        }
        while s.requests.len() >= MAX_REQUESTS {
            // Drop the oldest decided request; if all are pending, the oldest.
            let i = s
                .requests
                .iter()
                .position(|r| r.status != RequestStatus::Pending)
                .unwrap_or(0);
            s.requests.remove(i);
        }
        let id = s.next_id;
        s.next_id += 1;
        let req = PaymentRequest {
            id,
            app: app.to_owned(),
            to,
            amount,
            fee,
            memo,
            status: if auto {
                RequestStatus::Approved
            } else {
                RequestStatus::Pending
            },
            txid: None,
            error: None,
            created: now(),
            auto,
        };
        s.requests.push_back(req.clone());
        Ok(req)
    }

    pub fn requests(&self) -> Vec<PaymentRequest> {
        self.lock().requests.iter().rev().cloned().collect()
    }

    pub fn request(&self, id: u64) -> Option<PaymentRequest> {
        self.lock().requests.iter().find(|r| r.id == id).cloned()
    }

    /// The user's decision on a pending request. Approving moves it to
    /// `Approved`; the caller then sends it and reports with [`Apps::sent`].
    pub fn decide(&self, id: u64, approve: bool) -> Result<PaymentRequest, AppsError> {
        let mut s = self.lock();
        let r = s
            .requests
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(AppsError::NoSuchRequest(id))?;
        if r.status != RequestStatus::Pending {
            return Err(AppsError::AlreadyDecided(id));
        }
        r.status = if approve {
            RequestStatus::Approved
        } else {
            RequestStatus::Denied
        };
        Ok(r.clone())
    }

    /// Records the outcome of sending an approved request.
    pub fn sent(&self, id: u64, result: Result<String, String>) -> Option<PaymentRequest> {
        let mut s = self.lock();
        let r = s.requests.iter_mut().find(|r| r.id == id)?;
        match result {
            Ok(txid) => {
                r.status = RequestStatus::Sent;
                r.txid = Some(txid);
            }
            Err(e) => {
                r.status = RequestStatus::Failed;
                r.error = Some(e);
            }
        }
        Some(r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn payments_wait_for_a_decision_unless_allowed() {
        let apps = Apps::default();
        let r = apps
            .request_payment(APP, Address([1; 32]), 50, 10, "tip".into())
            .unwrap();
        assert_eq!(r.status, RequestStatus::Pending);
        assert!(!r.auto);
        let d = apps.decide(r.id, true).unwrap();
        assert_eq!(d.status, RequestStatus::Approved);
        assert_eq!(
            apps.decide(r.id, false).unwrap_err(),
            AppsError::AlreadyDecided(r.id)
        );
        apps.sent(r.id, Ok("ab".into()));
        assert_eq!(apps.request(r.id).unwrap().status, RequestStatus::Sent);

        apps.set_permissions(
            APP,
            Permissions {
                payments: PaymentPermission::Allow,
                max_amount: 100,
                ..Default::default()
            },
        )
        .unwrap();
        let small = apps
            .request_payment(APP, Address([1; 32]), 100, 10, String::new())
            .unwrap();
        assert!(small.auto && small.status == RequestStatus::Approved);
        let big = apps
            .request_payment(APP, Address([1; 32]), 101, 10, String::new())
            .unwrap();
        assert_eq!(big.status, RequestStatus::Pending);
    }

    #[test]
    fn bad_requests_and_limits() {
        let apps = Apps::default();
        let to = Address([1; 32]);
        assert!(matches!(
            apps.request_payment("nothex", to, 1, 1, String::new()),
            Err(AppsError::BadHash(_))
        ));
        assert_eq!(
            apps.request_payment(APP, to, 0, 1, String::new())
                .unwrap_err(),
            AppsError::ZeroAmount
        );
        for _ in 0..MAX_PENDING_PER_APP {
            apps.request_payment(APP, to, 1, 1, String::new()).unwrap();
        }
        assert_eq!(
            apps.request_payment(APP, to, 1, 1, String::new())
                .unwrap_err(),
            AppsError::TooManyPending
        );
    }

    #[test]
    fn origin_labels_fit_in_dns_and_round_trip() {
        let label = origin_label(APP).unwrap();
        assert_eq!(label.len(), 52);
        assert!(label.len() <= 63);
        assert_eq!(hash_of_label(&label).as_deref(), Some(APP));
        assert_eq!(
            hash_of_label(&label.to_ascii_uppercase()).as_deref(),
            Some(APP)
        );
        assert_eq!(hash_of_label(APP).as_deref(), Some(APP));
        assert_eq!(hash_of_label("nope"), None);
        assert!(app_url(APP, "4720").starts_with(&format!("http://{label}.app.localhost:4720/")));
    }

    #[test]
    fn permissions_persist() {
        let dir = tempfile::tempdir().unwrap();
        let apps = Apps::open(dir.path());
        apps.visit(APP, Some("board".into()));
        apps.set_permissions(
            APP,
            Permissions {
                payments: PaymentPermission::Allow,
                max_amount: 5,
                uploads: UploadPermission::Allow,
            },
        )
        .unwrap();
        let again = Apps::open(dir.path());
        assert_eq!(again.permissions(APP).payments, PaymentPermission::Allow);
        assert_eq!(again.permissions(APP).uploads, UploadPermission::Allow);
        assert_eq!(again.list()[0].name.as_deref(), Some("board"));
    }
}
