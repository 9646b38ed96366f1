import pytest

from solution.benchmarks.scenarios import REFERENCE, Scenario, Stage, reference


def test_the_reference_set_lasts_about_eight_and_a_half_minutes():
    assert sum(s.duration_s for s in REFERENCE) == pytest.approx(510)
    names = [s.name for s in REFERENCE]
    assert names == ["steady", "ramp", "spike", "closed"]
    closed = REFERENCE[3]
    assert closed.closed and closed.vus == 10 and closed.closed_s == 120
    assert [s.max_vus for s in REFERENCE[:3]] == [1, 50, 50]


def test_constant_rate_arrivals_are_evenly_spaced():
    s = Scenario("c", "", 4.0, (Stage(2.0, 4.0),))
    assert s.arrivals() == pytest.approx([0.25 * i for i in range(8)])


def test_linear_ramp_arrivals_follow_the_rate_integral():
    s = Scenario("r", "", 0.0, (Stage(2.0, 10.0),))  # integral 2.5 t^2, 10 requests
    times = s.arrivals()
    assert len(times) == 10
    assert times == pytest.approx([(i / 2.5) ** 0.5 for i in range(10)])


def test_schedule_shape_at_a_small_time_scale():
    full, small = reference(), reference(time_scale=0.01)
    for a, b in zip(full, small, strict=True):
        assert b.duration_s == pytest.approx(a.duration_s * 0.01)
        if not a.closed:  # same rates, a hundredth of the time: a hundredth of the requests
            assert abs(b.planned() - a.planned() / 100) <= len(a.stages) + 1
            times = b.arrivals()
            assert times == sorted(times) and times[0] >= 0 and times[-1] <= b.duration_s
    ramp, spike = small[1], small[2]
    d = ramp.duration_s
    # 10 -> 30 -> 60, held, 40, held, back to 60, down to 0
    assert ramp.rate_at(0) == 10 and ramp.rate_at(0.3 * d / 2) > 30
    assert ramp.rate_at(0.3) == pytest.approx(60)
    assert ramp.rate_at(1.3) == pytest.approx(40)
    assert ramp.rate_at(d - 1e-6) == pytest.approx(0, abs=0.01)
    assert spike.rate_at(spike.duration_s / 2) == 200
    # the spike's last 120 s (scaled) hold 200/s
    held = [t for t in spike.arrivals() if t >= 0.1]
    assert len(held) == pytest.approx(200 * 1.2, abs=2)


def test_rate_scale_scales_rates_not_durations():
    s = reference(time_scale=1.0, rate_scale=0.5)[2]
    assert s.duration_s == 130 and s.rate_at(100) == 100
    with pytest.raises(ValueError):
        REFERENCE[0].scaled(0, 1)
