//! Written opinion ballots ("phiếu lấy ý kiến thành viên UBND") over REST.
//!
//! The secretariat (staff admin and secretary; operators read) creates a
//! request with its recipients, follows the tally and who has not answered,
//! sends in-app reminders and closes it (the server also closes it at the
//! deadline: `crate::server`'s sweep). Each recipient answers through its
//! own link, `/opinion#<token>`: an opinion token ([`OpinionClaims`], its
//! own audience, so neither an invitation nor a staff token), signed again
//! from the database whenever the secretariat lists the links.
//!
//! The recipient sees the question, the deadline, its own answer and the
//! reminders; the counts only once the request is closed (its outcome), so
//! nobody answers by the trend.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{
    NewOpinionRequest, OpinionAnswer, OpinionRecipient, OpinionRequest, PollStatus, Tally,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, Caller, PREPARE, READ};
use crate::auth::{OpinionClaims, TokenError};
use crate::protocol::ErrorCode;
use crate::AppState;

fn no_store(status: StatusCode, body: Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// The cabinet's refusals in this API's words.
fn opinion_error(e: cabinet::Error) -> ApiError {
    use cabinet::Error as E;
    match e {
        E::PollClosed(_) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::PollClosed,
            "the request is closed or its deadline has passed",
        ),
        E::AlreadyVoted(_) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::AlreadyVoted,
            "this member has already answered (the request does not allow changes)",
        ),
        E::NotFound { .. } => ApiError::not_found(ErrorCode::NotFound, e.to_string()),
        other => other.into(),
    }
}

/// A recipient as the secretariat sees it; with its answer link when
/// `base` is given (staff who prepare).
fn recipient_json(
    state: &AppState,
    req: &OpinionRequest,
    r: &OpinionRecipient,
    base: Option<&str>,
) -> Value {
    let mut v = json!(r);
    if let Some(base) = base {
        match state
            .keys
            .sign_opinion(&OpinionClaims::for_recipient(req, r))
        {
            Ok(token) => {
                v["url"] = json!(format!("{base}/opinion#{token}"));
                v["url_warning"] = json!(crate::links::link_warning(base));
                v["token"] = json!(token);
            }
            Err(e) => tracing::error!(error = %e, "cannot sign an opinion token"),
        }
    }
    v
}

/// The counts now: the outcome's once closed, else counted.
async fn tally_of(state: &AppState, req: &OpinionRequest) -> ApiResult<Tally> {
    match &req.outcome {
        Some(o) => Ok(o.tally),
        None => Ok(state.store.opinion_tally(&req.id).await?),
    }
}

/// `GET /api/opinions`: every request, newest first, each with its tally.
pub async fn list(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    let mut out = Vec::new();
    for req in state.store.list_opinion_requests().await? {
        let tally = tally_of(&state, &req).await?;
        let mut v = json!(req);
        v["tally"] = json!(tally);
        out.push(v);
    }
    Ok(no_store(StatusCode::OK, Value::Array(out)))
}

/// `POST /api/opinions`: a new request; the answer holds each recipient's
/// link.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewOpinionRequest>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let (req, recipients) = state
        .store
        .create_opinion_request(&caller.actor(), &new)
        .await
        .map_err(opinion_error)?;
    let base = super::handlers::link_base(&state, &headers);
    crate::mail::opinion_requested(&state, &req, &recipients, &base).await;
    let rs: Vec<Value> = recipients
        .iter()
        .map(|r| recipient_json(&state, &req, r, Some(&base)))
        .collect();
    let mut v = json!(req);
    v["tally"] = json!(Tally::default());
    Ok(no_store(
        StatusCode::CREATED,
        json!({"request": v, "recipients": rs, "not_answered": recipients.iter().map(|r| &r.name).collect::<Vec<_>>()}),
    ))
}

async fn details(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
) -> ApiResult<Value> {
    let Some(req) = state.store.get_opinion_request(id).await? else {
        return Err(opinion_error(cabinet::Error::NotFound {
            what: "opinion request",
            id: id.to_owned(),
        }));
    };
    let recipients = state.store.opinion_recipients(id).await?;
    let tally = tally_of(state, &req).await?;
    let base = caller
        .staff_in(PREPARE)
        .is_ok()
        .then(|| super::handlers::link_base(state, headers));
    let not_answered: Vec<&str> = recipients
        .iter()
        .filter(|r| r.answer.is_none())
        .map(|r| r.name.as_str())
        .collect();
    let rs: Vec<Value> = recipients
        .iter()
        .map(|r| recipient_json(state, &req, r, base.as_deref()))
        .collect();
    let mut v = json!(req);
    v["tally"] = json!(tally);
    let documents = state.store.opinion_documents(id).await?;
    Ok(
        json!({"request": v, "recipients": rs, "not_answered": not_answered, "documents": documents}),
    )
}

/// `GET /api/opinions/{id}`: one request with its tally, each recipient's
/// answer and reminders (and links, for staff who prepare), and the names
/// of those who have not answered.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    let v = details(&state, &caller, &id, &headers).await?;
    Ok(no_store(StatusCode::OK, v))
}

/// `POST /api/opinions/{id}/close`: closes it now (the outcome is computed
/// and stored once); closing a closed request changes nothing.
pub async fn close(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    if state.store.get_opinion_request(&id).await?.is_none() {
        return Err(opinion_error(cabinet::Error::NotFound {
            what: "opinion request",
            id,
        }));
    }
    state
        .store
        .close_opinion_request(&caller.actor(), &id)
        .await
        .map_err(opinion_error)?;
    let v = details(&state, &caller, &id, &headers).await?;
    Ok(no_store(StatusCode::OK, v))
}

/// The body of `POST /api/opinions/{id}/remind`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemindReq {
    /// Default: every recipient who has not answered.
    #[serde(default)]
    pub recipient_ids: Option<Vec<String>>,
    #[serde(default)]
    pub message: String,
}

/// `POST /api/opinions/{id}/remind`: in-app reminders (the recipients'
/// pages show them), and an e-mail to each reminded recipient with an
/// address when `[mail]` is configured.
pub async fn remind(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RemindReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let sent = state
        .store
        .remind_opinion(
            &caller.actor(),
            &id,
            req.recipient_ids.as_deref(),
            &req.message,
        )
        .await
        .map_err(opinion_error)?;
    let base = super::handlers::link_base(&state, &headers);
    crate::mail::opinion_reminded(&state, &id, &sent, &base).await;
    Ok(no_store(StatusCode::OK, json!({"reminders": sent})))
}

/// The recipient a request's bearer opinion token stands for, checked in
/// the database.
pub(super) async fn recipient_of(
    state: &AppState,
    headers: &HeaderMap,
) -> ApiResult<(OpinionRequest, OpinionRecipient)> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "open the link you were sent (Authorization: Bearer <opinion token>)",
        ));
    };
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::TokenInvalid,
            "the link is not valid",
        )
    };
    let claims = state.keys.decode_opinion(token).map_err(|e| match e {
        TokenError::Expired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::TokenExpired,
            "the link has expired",
        ),
        _ => invalid(),
    })?;
    let recipient = state
        .store
        .opinion_recipient(&claims.sub)
        .await?
        .filter(|r| r.request_id == claims.req)
        .ok_or_else(invalid)?;
    let request = state
        .store
        .get_opinion_request(&claims.req)
        .await?
        .ok_or_else(invalid)?;
    Ok((request, recipient))
}

/// What the recipient's page shows.
async fn recipient_view(
    state: &AppState,
    req: &OpinionRequest,
    r: &OpinionRecipient,
) -> ApiResult<Value> {
    let reminders = state.store.opinion_reminders(&r.id).await?;
    let now = cabinet::now_unix();
    let taking = req.status == PollStatus::Open && now < req.deadline;
    let contact = Some(state.api.contact.as_str()).filter(|c| !c.is_empty());
    let documents = state.store.opinion_documents(&req.id).await?;
    Ok(json!({
        "documents": documents,
        "request": {
            "id": req.id,
            "title": req.title,
            "question": req.question,
            "deadline": req.deadline,
            "rule": req.rule,
            "allow_changes": req.allow_changes,
            "status": req.status,
            "closed_at": req.closed_at,
            "outcome": req.outcome,
        },
        "recipient": {"id": r.id, "name": r.name, "answer": r.answer},
        "can_answer": taking && (r.answer.is_none() || req.allow_changes),
        "now": now,
        "reminders": reminders.iter().map(|m| json!({"message": m.message, "sent_at": m.sent_at})).collect::<Vec<_>>(),
        "contact": contact,
    }))
}

/// `GET /api/opinion`: the request of the bearer opinion token.
pub async fn recipient_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (req, r) = recipient_of(&state, &headers).await?;
    let v = recipient_view(&state, &req, &r).await?;
    Ok(no_store(StatusCode::OK, v))
}

/// The body of `PUT /api/opinion/answer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerReq {
    pub answer: OpinionAnswer,
    #[serde(default)]
    pub comment: String,
}

/// `PUT /api/opinion/answer`: the recipient answers (or changes its answer
/// until the deadline, when the request allows it).
pub async fn recipient_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AnswerReq>,
) -> ApiResult<Response> {
    let (_, r) = recipient_of(&state, &headers).await?;
    state
        .store
        .answer_opinion(&r.id, body.answer, &body.comment)
        .await
        .map_err(opinion_error)?;
    let (req, r) = recipient_of(&state, &headers).await?;
    let v = recipient_view(&state, &req, &r).await?;
    Ok(no_store(StatusCode::OK, v))
}
