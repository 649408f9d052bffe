//! Tessera's domain.
//!
//! Everything an authentication server decides lives here: what a valid
//! username, email and password are, how passwords are hashed, how access
//! tokens are signed and checked, and the storage ports the adapters
//! implement. Nothing here knows HTTP, SQL or BSON.

pub mod admin;
pub mod audit;
pub mod authorize;
pub mod client;
pub mod client_admin;
pub mod error;
pub mod factors;
pub mod flows;
pub mod id_token;
pub mod keys;
pub mod lifecycle;
pub mod mail;
pub mod mfa;
pub mod model;
pub mod oauth;
pub mod oidc;
pub mod passkeys;
pub mod password;
pub mod rate;
pub mod refresh;
pub mod secret;
pub mod service;
pub mod store;
pub mod throttle;
pub mod token;
pub mod validation;

pub use admin::{Page, UserChange, UserSessions, MAX_PAGE};
pub use audit::{Actor, AuditEvent, AuditQuery, Audited, Origin, Outcome};
pub use authorize::{
    AuthorizationCode, AuthorizationParams, BrowserSession, CodeGrant, CodeRedemption, Consent,
    PendingAuthorization, Prompt,
};
pub use client::{Client, ClientRegistration, GrantType};
pub use error::AuthError;
pub use factors::{Ceremony, CeremonyKind, Factor, FactorKey, FactorKind};
pub use flows::{
    AuthorizationQuery, AuthorizeError, AuthorizeErrorCode, BrowserSignIn, ClientRedirect,
    Progress, Step,
};
pub use id_token::{IdClaims, IdTokenIssuer, ProfileClaims};
pub use keys::{KeyError, PublicJwk, SigningAlgorithm};
pub use lifecycle::{AccountChange, EmailLink, LinkPurpose, LinkState};
pub use mail::{
    Composed, DeliveryPolicy, DeliveryReport, MailComposer, MailError, MailKind, MailOutcome,
    MailTransport, MailValues, Mailer, OutgoingMail, QueuedMail,
};
pub use mfa::{
    AccountOverview, FactorSettings, PasswordStep, SecondFactorChoices, SecondFactorDue,
    SecondFactorState, SessionRef, TotpEnrolment,
};
pub use model::{
    Consumed, NewRefreshToken, NewUser, RefreshTokenRecord, Session, TokenDigest, User, UserQuery,
    UserSummary,
};
pub use oauth::{ClientCredentials, ClientGrant, OAuthPolicy, TokenClient, ADMIN_SCOPE};
pub use oidc::{LogoutError, LogoutQuery, LogoutRequest, UserInfo};
pub use passkeys::{PasskeyChallenge, PasskeyConfigError, Passkeys};
pub use password::{HashingConfig, PasswordHasher};
pub use rate::RateLimit;
pub use secret::{DatabaseUrl, Secret};
pub use service::{AuthService, Introspection, LoginGrant, Registration, SessionPolicy, TokenKind};
pub use store::{
    AuditStore, ClientStore, FactorStore, FlowStore, Lifecycle, MailStore, Observed, SessionStore,
    Store, StoreError, StoreObserver, StoreSettings, ThrottleStore, ThrottleUpdate, UniqueField,
    UserStore,
};
pub use throttle::{ThrottlePolicy, ThrottleState};
pub use token::{AccessClaims, TokenConfig, TokenError, TokenKeys};
pub use validation::{Email, FieldError, Password, Username, ValidationErrors};
