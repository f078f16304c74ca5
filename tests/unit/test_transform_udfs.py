"""@udf and @udaf: the guide's signatures, once-per-batch calls, name=, duplicate names."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ematix_engine.errors import ConfigError
from ematix_engine.transform import (
    TransformError,
    TransformSqlError,
    TransformStage,
    UdfTypeError,
    udaf,
    udf,
)

CALLS: list[int] = []


@udf(args=("Float64", "Float64"), returns="Float64")
def spread(bid, ask):
    CALLS.append(len(bid))
    return pc.subtract(ask, bid)


@udf(args=("utf8",), returns="int64", name="text_length")
def _length(values):
    return pc.utf8_length(values).cast(pa.int64())


@udaf(args=("Float64", "Float64"), state=("Float64", "Float64"), returns="Float64", name="vwap")
class Vwap:
    def __init__(self):
        self.num = 0.0
        self.den = 0.0

    def update_batch(self, prices, qtys):
        self.num += pc.sum(pc.multiply(prices, qtys)).as_py() or 0.0
        self.den += pc.sum(qtys).as_py() or 0.0

    def merge_batch(self, num_states, den_states):
        self.num += pc.sum(num_states).as_py() or 0.0
        self.den += pc.sum(den_states).as_py() or 0.0

    def evaluate(self):
        if self.den == 0:
            return pa.array([None], type=pa.float64())
        return pa.array([self.num / self.den], type=pa.float64())

    def state(self):
        return (pa.array([self.num], type=pa.float64()), pa.array([self.den], type=pa.float64()))


QUOTES = pa.table(
    {
        "sym": ["a", "a", "b", "b", "b"],
        "bid": [1.0, 2.0, 3.0, 4.0, 5.0],
        "ask": [1.5, 2.5, 3.5, 4.5, 5.5],
        "qty": [1.0, 3.0, 2.0, 2.0, 0.0],
    }
)


def test_a_scalar_udf_is_called_once_per_batch_with_arrow_arrays() -> None:
    CALLS.clear()
    with TransformStage(
        "SELECT sym, spread(bid, ask) AS s, text_length(sym) AS n FROM source",
        udfs=[spread, _length],
        pipeline="greeks",
    ) as stage:
        for _ in range(3):
            out = stage.run(QUOTES)
    assert out.column("s").to_pylist() == [0.5] * 5
    assert out.column("n").to_pylist() == [1] * 5
    assert set(CALLS) == {5}  # whole batches, never single rows
    assert len(CALLS) <= 4  # 3 batches, plus at most one check of the cached plan


def test_the_decorated_function_stays_callable_and_keeps_its_sql_name() -> None:
    assert spread(pa.array([1.0]), pa.array([3.0])).to_pylist() == [2.0]
    assert spread.name == "spread" and _length.name == "text_length"
    assert spread.returns == pa.float64() and _length.args == (pa.string(),)


def test_the_guides_vwap_udaf() -> None:
    sql = "SELECT sym, vwap(bid, qty) AS vwap FROM source GROUP BY sym ORDER BY sym"
    with TransformStage(sql, aggregate_udfs=[Vwap], pipeline="vwap-per-minute") as stage:
        out = stage.run(QUOTES)
        again = stage.run(QUOTES)
    assert out.to_pydict() == {"sym": ["a", "b"], "vwap": [(1 + 6) / 4, (6 + 8) / 4]}
    assert again.equals(out)


def test_a_udaf_over_an_all_zero_group_returns_null() -> None:
    with TransformStage(
        "SELECT vwap(bid, qty) AS v FROM source", aggregate_udfs=[Vwap], pipeline="p"
    ) as stage:
        assert stage.run(QUOTES.slice(4)).column("v").to_pylist() == [None]


@pytest.mark.parametrize("bad", ["Decimal", "Timestamp", "float", 64])
def test_an_unknown_type_string_fails_at_decoration(bad: object) -> None:
    with pytest.raises(UdfTypeError, match="not supported") as caught:
        udf(args=(bad,), returns="Float64")(lambda x: x)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ConfigError)
    with pytest.raises(ValueError, match="state 1 type"):
        udaf(args=("Float64",), state=(bad,), returns="Float64")(Vwap.cls)


def test_a_duplicate_name_is_a_config_error_naming_it() -> None:
    @udf(args=("Float64",), returns="Float64", name="vwap")
    def clash(x):
        return x

    with pytest.raises(ConfigError, match=r"'p'.*'vwap'.*name="):
        TransformStage("SELECT 1", udfs=[clash], aggregate_udfs=[Vwap], pipeline="p")
    with pytest.raises(ConfigError, match="'spread'"):
        TransformStage("SELECT 1", udfs=[spread, spread], pipeline="p")


def test_an_undecorated_function_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="@udf"):
        TransformStage("SELECT 1", udfs=[lambda x: x], pipeline="p")


def test_a_udaf_class_without_the_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="merge_batch"):

        @udaf(args=("Float64",), state=("Float64",), returns="Float64")
        class Half:
            def update_batch(self, values): ...

            def evaluate(self): ...

            def state(self): ...


def test_a_call_with_the_wrong_argument_type_fails_at_plan_time() -> None:
    with pytest.raises(TransformSqlError, match="'p'"):
        TransformStage(
            "SELECT spread(sym, sym) FROM source",
            udfs=[spread],
            pipeline="p",
            schema=QUOTES.schema,
        )


def test_a_wrong_return_type_names_the_function() -> None:
    @udf(args=("Float64",), returns="Int64", name="liar")
    def liar(values):
        return values

    stage = TransformStage("SELECT liar(bid) FROM source", udfs=[liar], pipeline="p")
    with stage, pytest.raises(TransformError, match="UDF 'liar' returned an array of double"):
        stage.run(QUOTES)


def test_a_wrong_evaluate_type_names_the_method() -> None:
    @udaf(args=("Float64",), state=("Float64",), returns="Float64", name="bad_total")
    class BadTotal:
        def __init__(self):
            self.total = 0.0

        def update_batch(self, values):
            self.total += pc.sum(values).as_py() or 0.0

        def merge_batch(self, totals):
            self.total += pc.sum(totals).as_py() or 0.0

        def evaluate(self):
            return pa.array([int(self.total)])

        def state(self):
            return (pa.array([self.total]),)

    stage = TransformStage(
        "SELECT bad_total(bid) FROM source", aggregate_udfs=[BadTotal], pipeline="p"
    )
    with stage, pytest.raises(TransformError, match=r"'bad_total': evaluate\(\) returned"):
        stage.run(QUOTES)


def test_an_exception_in_a_udf_is_named_and_chained() -> None:
    @udf(args=("Float64",), returns="Float64")
    def boom(values):
        raise ValueError("bad strike")

    stage = TransformStage("SELECT boom(bid) FROM source", udfs=[boom], pipeline="greeks")
    with stage, pytest.raises(TransformError) as caught:
        stage.run(QUOTES)
    assert "pipeline 'greeks'" in str(caught.value)
    assert "UDF 'boom' raised ValueError: bad strike" in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)


def test_an_exception_in_a_udaf_method_names_the_method() -> None:
    @udaf(args=("Float64",), state=("Float64",), returns="Float64", name="fragile")
    class Fragile:
        def update_batch(self, values):
            raise ZeroDivisionError("no quotes")

        def merge_batch(self, totals): ...

        def evaluate(self): ...

        def state(self): ...

    stage = TransformStage(
        "SELECT fragile(bid) FROM source", aggregate_udfs=[Fragile], pipeline="p"
    )
    with (
        stage,
        pytest.raises(
            TransformError, match=r"UDAF 'fragile': update_batch\(\) raised ZeroDivisionError"
        ),
    ):
        stage.run(QUOTES)
