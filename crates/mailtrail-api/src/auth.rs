//! Who is asking: the bearer token, checked against its stored SHA-256, and the scope it grants.
//! The token never reaches a log line.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use mailtrail_store::StorePool;
use mailtrail_store::tokens::{TokenScope, authenticate};

use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller(pub TokenScope);

impl Caller {
    /// Refuses a project token (the question is about more than one project).
    pub fn require_all(self) -> Result<(), ApiError> {
        match self.0 {
            TokenScope::All => Ok(()),
            TokenScope::Project(own) => Err(ApiError::Forbidden(own)),
        }
    }

    /// Refuses a token limited to another project.
    pub fn require_project(self, project_id: i64) -> Result<(), ApiError> {
        match self.0 {
            TokenScope::Project(own) if own != project_id => Err(ApiError::Forbidden(own)),
            _ => Ok(()),
        }
    }

    /// The project a token is limited to, if any.
    pub fn project(self) -> Option<i64> {
        match self.0 {
            TokenScope::All => None,
            TokenScope::Project(own) => Some(own),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| token.trim().to_owned());
        let pool = request.app_data::<web::Data<StorePool>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(pool)) = (token, pool) else {
                return Err(ApiError::Unauthorized);
            };
            let mut connection = crate::routes::connection(&pool).await?;
            match authenticate(&mut connection, &token).await? {
                Some(scope) => Ok(Caller(scope)),
                None => Err(ApiError::Unauthorized),
            }
        })
    }
}
