"""The version policy: which versions to load, keep and serve. Pure: no threads, no I/O.

Like TF Serving's ``AspiredVersionPolicy`` it is stateless and idempotent: the manager describes
what it sees (``PolicyView``) and asks for the next step (``plan``); it loads the version the plan
names, records the outcome, and asks again until the plan says what to serve. Asking one step at a
time is what lets ``latest: N`` skip a broken newest version and fill in with the next older one.

The rules, in one place:

- a pin (``Reload(version)``) wants exactly that version; otherwise ``specific`` wants the listed
  versions present, and ``latest: N`` the N newest that load;
- the newest wanted version that loaded answers requests that name no version;
- labelled versions stay loaded whatever the policy says, while they are on disk and loadable;
- when nothing wanted can serve, nothing changes: the served version keeps serving (a storage
  glitch or a broken export never takes a model down).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swapserve.config.model_settings import VersionPolicy


@dataclass(frozen=True)
class PolicyView:
    """What the manager sees now."""

    eligible: tuple[int, ...]
    """Versions that may serve, newest first: complete, settled and not failed with their
    current files, plus loaded versions still on disk."""
    loaded: frozenset[int]
    failed: frozenset[int]
    """Versions whose load failed in this round (not tried again in it)."""
    pinned: int
    """The version a Reload pinned (0: none)."""
    labelled: frozenset[int]
    policy: VersionPolicy


@dataclass(frozen=True)
class Plan:
    """The next step: load ``load``; or, when it is 0, serve ``serve`` and keep ``keep`` loaded
    (releasing the rest); or, when both are 0, change nothing."""

    load: int = 0
    serve: int = 0
    keep: frozenset[int] = frozenset()

    @property
    def changes_nothing(self) -> bool:
        """Nothing wanted can serve: leave every loaded version as it is."""
        return not self.load and not self.serve


def preference(
    versions: Sequence[int], pinned: int, policy: VersionPolicy
) -> tuple[list[int], int]:
    """The versions the policy wants, in preference order (newest first), and how many of
    them to keep.

    Args:
        versions: the candidates, newest first.
        pinned: the pinned version (0: none).
        policy: the model's version policy.
    """
    if pinned:
        return [v for v in versions if v == pinned], 1
    if policy.specific:
        wanted = [v for v in versions if v in policy.specific]
        return wanted, len(wanted)
    return list(versions), policy.latest


def plan(view: PolicyView) -> Plan:
    """The next step towards what the policy, the pin and the labels want."""
    wanted, limit = preference(view.eligible, view.pinned, view.policy)
    keep: list[int] = []
    for version in wanted:
        if len(keep) >= limit:
            break
        if version in view.loaded:
            keep.append(version)
        elif version not in view.failed:
            return Plan(load=version)
    if not keep:
        return Plan()
    for version in view.eligible:
        if version in view.labelled and version not in keep:
            if version in view.loaded:
                keep.append(version)
            elif version not in view.failed:
                return Plan(load=version)
    return Plan(serve=keep[0], keep=frozenset(keep))


def default_version(versions: Sequence[int], pinned: int, policy: VersionPolicy) -> int:
    """The version the policy would serve by default among ``versions`` (newest first): the
    newest wanted one, whether or not it loads; 0 if none."""
    wanted, _ = preference(versions, pinned, policy)
    return wanted[0] if wanted else 0


def remote_keep(
    settled: Sequence[int],
    listed: Iterable[int],
    *,
    loaded: Iterable[int],
    labelled: Iterable[int],
    failed: Iterable[int],
    pinned: int,
    policy: VersionPolicy,
) -> set[int]:
    """The versions of an object-store export root to have in the local cache: what the policy,
    pin and labels want among the settled ones, the settled ones that failed to load (so they
    are not fetched again and again), and every loaded version still listed.

    Args:
        settled: settled remote versions, newest first.
        listed: every version the bucket lists.
        loaded: versions loaded now.
        labelled: versions labels name.
        failed: versions that failed to load with their current files.
        pinned: the pinned version (0: none).
        policy: the model's version policy.
    """
    on_disk, failed_set = set(settled), set(failed)
    keep = set(loaded) & set(listed)
    keep |= set(labelled) & on_disk
    keep |= failed_set & on_disk
    wanted, limit = preference([v for v in settled if v not in failed_set], pinned, policy)
    keep |= set(wanted[:limit])
    return keep
