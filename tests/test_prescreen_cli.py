"""`sagsflow prescreen`: the table, `--json`, and bad input that never leaks what the file holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CPR_DIGITS = "1006571234"

# Wide enough that rich never folds a rule id or a reason mid-word.
runner = CliRunner(env={"COLUMNS": "220", "NO_COLOR": "1"})


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["prescreen", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_example_seniorpension_is_dispatched_with_a_row_per_rule() -> None:
    code, out, err = run(str(EXAMPLES / "application-seniorpension.json"))
    assert code == 0, err
    assert "Verdict: dispatch" in out
    for rule in ("age_window", "full_time_years", "current_attachment", "work_capacity", "prior_benefit",
                 "citizenship", "residence", "residence_years"):  # fmt: skip
        assert rule in out
    assert "§ 26 a, stk. 1" in out
    assert "Test Testesen" not in out
    assert "100657" not in out


def test_example_formal_rejection_as_json() -> None:
    code, out, _ = run(str(EXAMPLES / "application-formal-rejection.json"), "--json")
    assert code == 0
    body = json.loads(out)
    assert body["verdict"] == "formal_rejection"
    not_met = {r["rule"] for r in body["results"] if r["outcome"] == "not_met"}
    assert {"age_window", "prior_benefit", "full_time_years"} <= not_met
    assert {"rule", "outcome", "reason", "source", "factors", "formal"} <= set(body["results"][0])


def test_example_seniorfoertidspension_needs_assessment_and_lists_factors() -> None:
    code, out, _ = run(str(EXAMPLES / "application-seniorfoertidspension.json"))
    assert code == 0
    assert "Verdict: needs_assessment" in out
    assert "existing competences only" in out


def test_screening_day_option() -> None:
    path = str(EXAMPLES / "application-seniorfoertidspension.json")
    code, out, _ = run(path, "--json", "--on", "2018-09-01")
    assert code == 0
    body = json.loads(out)
    assert body["screened_on"] == "2018-09-01"
    attachment = next(r for r in body["results"] if r["rule"] == "current_attachment")
    assert attachment["outcome"] == "not_met"  # ten months on kontanthjælp by then
    code, _, err = run(path, "--on", "1 September")
    assert code == 2
    assert "--on: must be a date" in err


def _write(tmp_path: Path, body: object | str) -> str:
    path = tmp_path / "application.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return str(path)


def _example() -> dict[str, object]:
    data = json.loads((EXAMPLES / "application-seniorpension.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_schema_violations_are_field_level_without_the_values(tmp_path: Path) -> None:
    data = _example()
    data["applicant"] = {"cpr": "10065712", "name": "Test Testesen"}
    data["kommune_kode"] = "4242"
    data["received_on"] = "2021-02-30"
    data["employment"] = [{"start": "2000-01-01", "end": "1999-01-01", "weekly_hours": 37}]
    data["current_attachment"] = {"status": "pensioner-1006571234", "since": "2020-01-01"}
    data["1006571234"] = "secret"
    code, out, err = run(_write(tmp_path, data))
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert "applicant.cpr: CPR number must be 10 digits" in err
    assert "kommune_kode: must be one of the 98 kommune codes" in err
    assert "received_on: " in err
    assert "employment.0: end must not be before start" in err
    assert "current_attachment.status: Input should be" in err
    assert "<key>: Extra inputs are not permitted" in err
    for secret in ("10065712", "Test Testesen", "4242", "2021-02-30", "pensioner", CPR_DIGITS, "secret"):
        assert secret not in err


def test_an_impossible_birth_date_in_the_cpr_is_a_field_error(tmp_path: Path) -> None:
    data = _example()
    data["applicant"] = {"cpr": "320657-1234", "name": "X"}
    code, _, err = run(_write(tmp_path, data))
    assert code == 2
    assert "applicant.cpr: CPR number does not contain a valid birth date" in err
    assert "320657" not in err


def test_a_cpr_failing_modulus_11_is_accepted(tmp_path: Path) -> None:
    data = _example()
    data["applicant"] = {"cpr": "100657-1235", "name": "X"}  # modulus 11 is not guaranteed since 2007
    code, out, _ = run(_write(tmp_path, data), "--json")
    assert code == 0
    assert json.loads(out)["verdict"] == "dispatch"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"case_type": "seniorpension", "applicant": {"cpr": "100657-1234",}', "malformed JSON at line 1"),
        ("", "malformed JSON at line 1 column 1"),
        ("[1, 2]", "(document): Input should be a valid dictionary"),
        ("{}", "case_type: Field required"),
    ],
)
def test_malformed_documents(tmp_path: Path, body: str, expected: str) -> None:
    code, out, err = run(_write(tmp_path, body))
    assert code == 2
    assert out == ""
    assert expected in err
    assert "Traceback" not in err
    assert "100657" not in err


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "application.json"
    path.write_bytes(b"\xff\xfe{}")
    code, _, err = run(str(path))
    assert code == 2
    assert "not UTF-8 text" in err


def test_missing_file_and_directory(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path / "nope.json"))
    assert (code, out) == (2, "")
    assert "nope.json: no such file" in err
    code, _, err = run(str(tmp_path))
    assert code == 2
    assert "is a directory" in err
