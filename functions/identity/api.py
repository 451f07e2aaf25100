"""Identity's routes: auth, the caller's profile and settings, API keys, and user and role administration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Path, Query, Response, status

from functions.identity import service
from functions.identity.models import (
    AccountDeletion,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    AuthResponse,
    DeletionStarted,
    ForgotPasswordRequest,
    InviteUserRequest,
    LoginRequest,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    RoleCreate,
    RolePublic,
    RolesUpdate,
    SessionPublic,
    SettingsUpdate,
    TokenStatus,
    UserPublic,
    UserSettings,
    UserStatusUpdate,
)
from shared.auth.principal import Principal
from shared.errors import Unauthorized
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal, require_permission
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shared.settings import get_settings

REFRESH_COOKIE = "refresh_token"
REFRESH_COOKIE_PATH = "/api/v1/auth"

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
RefreshCookie = Annotated[str | None, Cookie(alias=REFRESH_COOKIE)]
Admin = Annotated[Principal, Depends(require_permission(service.USERS_MANAGE))]
# An administrative change checks `users.manage` in the service, inside what the audit log records: a refused
# attempt is an event too.
AdminChange = CurrentPrincipal

public = APIRouter(prefix="/api/v1", tags=["auth"])
auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users = APIRouter(prefix="/api/v1/users", tags=["users"])
api_keys = APIRouter(prefix="/api/v1/api-keys", tags=["api keys"])
admin = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def _signed_in(response: Response, signed_in: service.SignedIn) -> AuthResponse:
    """The token pair in the body, and the refresh token again as an HTTP-only cookie for browsers."""
    response.set_cookie(
        REFRESH_COOKIE,
        signed_in.refresh_token,
        max_age=get_settings().refresh_token_ttl_seconds,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        secure=True,
        samesite="strict",
    )
    return signed_in.body


# Public auth ----------------------------------------------------------------------------------------------


@public.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=AuthResponse,
    responses=refusals(409, meaning={409: "An account with this email already exists (`email_taken`)"}),
)
def register(body: RegisterRequest, response: Response) -> AuthResponse:
    return _signed_in(response, service.register(body.email, body.password, body.name))


@public.post(
    "/auth/login",
    response_model=AuthResponse,
    responses=refusals(
        401,
        429,
        meaning={
            401: "Wrong email or password, or an account that cannot sign in (`invalid_credentials`)",
            429: "Too many failed sign-ins for this email (`rate_limited`, limit `login_attempts`)",
        },
    ),
)
def login(body: LoginRequest, response: Response) -> AuthResponse:
    return _signed_in(response, service.login(body.email, body.password))


@public.post("/auth/refresh", response_model=AuthResponse, responses=refusals(401))
def refresh(response: Response, cookie: RefreshCookie = None, body: RefreshRequest | None = None) -> AuthResponse:
    token = (body.refresh_token if body else None) or cookie
    if not token:
        raise Unauthorized("Send the refresh token in the body or the refresh_token cookie", code="missing_credentials")
    return _signed_in(response, service.refresh(token))


@public.post("/auth/forgot-password", status_code=status.HTTP_202_ACCEPTED, response_class=Response)
def forgot_password(body: ForgotPasswordRequest) -> Response:
    service.forgot_password(body.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@public.post(
    "/auth/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=refusals(400, meaning={400: "The reset token is invalid, spent or expired (`invalid_reset_token`)"}),
)
def reset_password(body: ResetPasswordRequest) -> Response:
    service.reset_password(body.token, body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@public.get("/.well-known/jwks.json", tags=["auth"])
def jwks(response: Response) -> dict[str, list[dict[str, str]]]:
    from shared.auth.keys import key_ring

    response.headers["cache-control"] = "public, max-age=300"
    return key_ring().jwks()


# The signed-in caller -------------------------------------------------------------------------------------


@auth.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def logout(principal: CurrentPrincipal, cookie: RefreshCookie = None, body: RefreshRequest | None = None) -> Response:
    service.logout(principal, (body.refresh_token if body else None) or cookie)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, httponly=True, secure=True, samesite="strict")
    return response


@auth.get("/sessions", response_model=Page[SessionPublic], responses=refusals(400))
def list_sessions(
    principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[SessionPublic]:
    items, next_cursor = service.list_sessions(principal, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@auth.delete(
    "/sessions/{sessionId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=refusals(404, meaning={404: "No signed-in session of yours has this id (`session_not_found`)"}),
)
def revoke_session(
    principal: CurrentPrincipal, session_id: Annotated[str, Path(alias="sessionId", max_length=26)]
) -> Response:
    """Sign that session out: its refresh token and its access tokens are refused from now on."""
    service.revoke_session(principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth.get("/me", response_model=UserPublic)
def me(principal: CurrentPrincipal) -> UserPublic:
    return service.profile(principal.user_id)


@auth.get("/verify", response_model=TokenStatus)
def verify(principal: CurrentPrincipal) -> TokenStatus:
    return TokenStatus(
        valid=True, user_id=principal.user_id, expires_at=principal.expires_at, auth_type=principal.auth_type
    )


@users.get("/profile", response_model=UserPublic)
def get_profile(principal: CurrentPrincipal) -> UserPublic:
    return service.profile(principal.user_id)


@users.put("/profile", response_model=UserPublic)
def put_profile(principal: CurrentPrincipal, body: ProfileUpdate) -> UserPublic:
    return service.update_profile(principal.user_id, body)


@users.get("/settings", response_model=UserSettings)
def get_settings_route(principal: CurrentPrincipal) -> UserSettings:
    return service.user_settings(principal.user_id)


@users.put("/settings", response_model=UserSettings)
def put_settings(principal: CurrentPrincipal, body: SettingsUpdate) -> UserSettings:
    return service.update_settings(principal.user_id, body)


@users.delete(
    "/account",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeletionStarted,
    responses=refusals(
        401,
        403,
        429,
        meaning={
            401: "The password is missing or wrong (`invalid_credentials`), or the account is already going",
            403: "An API key without the `users.delete_self` permission (`permission_denied`)",
            429: "Too many wrong passwords for this account (`rate_limited`, limit `login_attempts`)",
        },
    ),
)
def delete_account(principal: CurrentPrincipal, body: AccountDeletion | None = None) -> DeletionStarted:
    """Delete the caller's account and everything it holds. Every credential is refused at once; the data goes
    in a deletion job (`GET /users/jobs`), after which the email can register afresh."""
    return DeletionStarted(job_id=service.delete_account(principal, body.password if body else None))


# API keys -------------------------------------------------------------------------------------------------


@api_keys.get("", response_model=Page[ApiKeyPublic], responses=refusals(400))
def list_keys(
    principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[ApiKeyPublic]:
    items, next_cursor = service.list_api_keys(principal.user_id, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@api_keys.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=refusals(403))
def create_key(principal: CurrentPrincipal, body: ApiKeyCreate) -> ApiKeyCreated:
    return service.create_api_key(principal, body)


@api_keys.delete("/{keyId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(404))
def revoke_key(principal: CurrentPrincipal, key_id: Annotated[str, Path(alias="keyId", max_length=26)]) -> Response:
    service.revoke_api_key(principal, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Administration -------------------------------------------------------------------------------------------


@admin.get("/users", response_model=Page[UserPublic], responses=refusals(400, 403))
def list_users(_: Admin, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[UserPublic]:
    items, next_cursor = service.list_users(limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@admin.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic, responses=refusals(403, 409))
def invite_user(principal: AdminChange, body: InviteUserRequest) -> UserPublic:
    return service.invite_user(principal, body)


@admin.put("/users/{userId}/roles", response_model=UserPublic, responses=refusals(403, 404, 409))
def set_roles(
    principal: AdminChange, user_id: Annotated[str, Path(alias="userId", max_length=26)], body: RolesUpdate
) -> UserPublic:
    return service.set_roles(principal, user_id, body.roles)


@admin.put("/users/{userId}/status", response_model=UserPublic, responses=refusals(403, 404, 409))
def set_status(
    principal: AdminChange, user_id: Annotated[str, Path(alias="userId", max_length=26)], body: UserStatusUpdate
) -> UserPublic:
    return service.set_status(principal, user_id, body.status)


@admin.get("/roles", response_model=Page[RolePublic], responses=refusals(403))
def list_roles(_: Admin) -> Page[RolePublic]:
    return Page(items=service.list_roles())


@admin.post("/roles", status_code=status.HTTP_201_CREATED, response_model=RolePublic, responses=refusals(403, 409))
def create_role(principal: AdminChange, body: RoleCreate) -> RolePublic:
    return service.create_role(principal, body)


@admin.delete(
    "/roles/{roleName}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=refusals(403, 404, 409),
)
def delete_role(principal: AdminChange, role_name: Annotated[str, Path(alias="roleName", max_length=40)]) -> Response:
    service.delete_role(principal, role_name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


app = create_app(title="Stratus identity", public=[public], protected=[auth, users, api_keys, admin])
