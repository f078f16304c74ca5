"""Map an ematix retry policy onto Dagster's.

Dagster's ``Backoff.EXPONENTIAL`` waits ``(2**n - 1) * delay`` before retry ``n``; with
``Jitter.PLUS_MINUS`` it adds up to ± ``delay``. That matches ematix's default growth factor 2
(and factor 1 is a constant delay), so those pipelines get a declarative ``RetryPolicy`` that
the UI shows. Any other factor, and the ``max_backoff_seconds`` cap, cannot be expressed there:
such pipelines get no op policy, and the resource requests each retry itself with the exact
engine delay (``RetryRequested(seconds_to_wait=policy.delay_seconds(attempt))``).

Whether to retry at all is the error's call (:func:`ematix_engine.errors.is_retryable`):
:func:`failure_for` turns a terminal error (a config error, schema drift, a SQL or data error)
into ``dagster.Failure(allow_retries=False)``, so neither the op policy nor a requested retry
runs the step again.
"""

from __future__ import annotations

import random

import dagster as dg

from ematix_engine import RetryPolicy, is_retryable

__all__ = ["dagster_retry_policy", "failure_for", "needs_requested_retries", "requested_retry"]


def needs_requested_retries(policy: RetryPolicy) -> bool:
    """Whether retries must be requested by the resource (factor other than 1 or 2)."""
    return policy.max_attempts > 1 and policy.backoff_factor not in (1.0, 2.0)


def dagster_retry_policy(policy: RetryPolicy) -> dg.RetryPolicy | None:
    """The op ``RetryPolicy`` for ``policy``, or ``None`` (no retries, or requested ones).

    Args:
        policy: The pipeline's retry policy.

    Returns:
        ``RetryPolicy(max_retries=max_attempts - 1, delay=backoff_seconds,
        backoff=EXPONENTIAL (factor 2) or none (factor 1), jitter=PLUS_MINUS when jitter > 0)``.

    Example:
        >>> dagster_retry_policy(RetryPolicy(max_attempts=3, backoff_seconds=10)).max_retries
        2
    """
    if policy.max_attempts <= 1 or needs_requested_retries(policy):
        return None
    return dg.RetryPolicy(
        max_retries=policy.max_attempts - 1,
        delay=policy.backoff_seconds,
        backoff=dg.Backoff.EXPONENTIAL if policy.backoff_factor == 2.0 else None,
        jitter=dg.Jitter.PLUS_MINUS if policy.jitter > 0 else None,
    )


def requested_retry(
    policy: RetryPolicy, attempt: int, error: BaseException
) -> dg.RetryRequested | None:
    """A ``RetryRequested`` carrying the engine's exact delay, when the resource must ask.

    Args:
        policy: The pipeline's retry policy.
        attempt: The attempt that just failed (1-based).
        error: What failed.

    Returns:
        The exception to raise, or ``None`` when Dagster's policy (or nothing) handles it.
    """
    if not needs_requested_retries(policy) or attempt >= policy.max_attempts:
        return None
    retry = dg.RetryRequested(
        max_retries=policy.max_attempts - 1,
        seconds_to_wait=policy.delay_seconds(attempt, random.random()),
    )
    retry.__cause__ = error
    return retry


def failure_for(
    error: BaseException, policy: RetryPolicy, attempt: int
) -> dg.Failure | dg.RetryRequested | None:
    """What the resource raises instead of ``error``, if anything.

    Args:
        error: What failed.
        policy: The pipeline's retry policy.
        attempt: The attempt that just failed (1-based).

    Returns:
        ``Failure(allow_retries=False)`` for a terminal error (no retry helps, whatever the
        policy); a ``RetryRequested`` with the engine's delay for a transient error when the
        resource must request retries itself (:func:`requested_retry`); otherwise ``None``:
        re-raise ``error`` and let the op ``RetryPolicy`` (or nothing) decide.

    Example:
        >>> from ematix_engine.errors import ConfigError
        >>> policy = RetryPolicy(max_attempts=3)
        >>> failure_for(ConfigError("bad target"), policy, 1).allow_retries
        False
        >>> failure_for(TimeoutError("server slow"), policy, 1) is None
        True
    """
    if not isinstance(error, Exception):  # KeyboardInterrupt, GeneratorExit, …
        return None
    if not is_retryable(error):
        failure = dg.Failure(
            description=(
                f"{error} (a {type(error).__name__}: retrying cannot help, so the step is not "
                f"retried; fix the cause, then materialize again)"
            ),
            allow_retries=False,
        )
        failure.__cause__ = error
        return failure
    return requested_retry(policy, attempt, error)
