"""What one attempt of a task dials and shows: the extension profile merged over
[calls], the task's caller IDs and ANI lists picked by attempt number."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ami.originate import CallRequest
from config import Settings
from daemon.models import CallPlan
from daemon.retry import pick
from daemon.store.attempts import TaskRecord


@dataclass(frozen=True)
class CallProfile:
    a_channel: str
    b_channel: str
    a_ring_timeout: int
    b_ring_timeout: int
    max_talk_time: int
    caller_id_number: str
    caller_id_name: str
    account_code: str
    max_concurrent: int | None


class _ProfileCache:
    """The profiles of the settings in force: every attempt and every due row needs
    one, and merging them costs two model dumps. A reload brings a new Settings
    object, which empties the cache (it holds the object, so its id stays its own)."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._profiles: dict[int | None, CallProfile] = {}

    def get(self, settings: Settings, extension_id: int | None) -> CallProfile:
        if settings is not self._settings:
            self._settings, self._profiles = settings, {}
        profile = self._profiles.get(extension_id)
        if profile is None:
            profile = self._profiles[extension_id] = _merged_profile(settings, extension_id)
        return profile


_PROFILES = _ProfileCache()


def profile_for(settings: Settings, extension_id: int | None) -> CallProfile:
    """[calls] with the keys the task's extension profile sets laid over it."""
    return _PROFILES.get(settings, extension_id)


def _merged_profile(settings: Settings, extension_id: int | None) -> CallProfile:
    ext = settings.extensions.get(extension_id) if extension_id is not None else None
    merged = settings.calls.model_dump() | (ext.model_dump(exclude_unset=True) if ext else {})
    names = [f.name for f in fields(CallProfile) if f.name != "max_concurrent"]
    return CallProfile(
        **{name: merged[name] for name in names},
        max_concurrent=ext.max_concurrent if ext is not None else None,
    )


def plan_attempt(
    record: TaskRecord, settings: Settings, attempt_no: int, call_uuid: str
) -> tuple[CallRequest, CallPlan]:
    task = record.task
    profile = profile_for(settings, task.extension_id)
    params = task.callback_params
    a_cid_number = (
        pick(task.attempts_src_ani_numbers, attempt_no)
        or params.caller_id_number
        or profile.caller_id_number
    )
    a_cid_name = params.caller_id_name or profile.caller_id_name
    # Empty = the dialplan shows B the number of the A phone that answered.
    b_cid_number = pick(task.attempts_dst_ani_numbers, attempt_no) or profile.caller_id_number
    a_numbers = list(record.progress.a_numbers_left)
    request = CallRequest(
        call_uuid=call_uuid,
        a_numbers=a_numbers,
        b_number=task.b_number,
        a_channel=profile.a_channel,
        b_channel=profile.b_channel,
        a_ring_timeout=profile.a_ring_timeout,
        b_ring_timeout=profile.b_ring_timeout,
        a_caller_id_number=a_cid_number,
        a_caller_id_name=a_cid_name,
        b_caller_id_number=b_cid_number,
        account_code=profile.account_code,
        max_talk_time=profile.max_talk_time,
        variables=task.variables,
    )
    plan = CallPlan(
        a_numbers=a_numbers,
        b_number=task.b_number,
        a_caller_id_number=a_cid_number,
        a_caller_id_name=a_cid_name,
        b_caller_id_number=b_cid_number,
        account_code=profile.account_code,
        interval_zone=record.hours_zone[0] if record.hours_zone else None,
        interval_zone_reason=record.hours_zone[1] if record.hours_zone else None,
    )
    return request, plan
