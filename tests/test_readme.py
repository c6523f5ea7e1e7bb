"""The README's commands and quickstart stay true."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()


def block_after(marker: str) -> str:
    m = re.search(re.escape(marker) + r"\s*```\w*\n(.*?)```", README, re.S)
    assert m, f"README has no code block after {marker}"
    return m.group(1).strip()


def test_setup_commands_lead_the_readme():
    main_cmd, test_cmd = block_after("<!-- main-command -->"), block_after("<!-- test-command -->")
    assert main_cmd.startswith("pip install ") and "python -m sszoo." in main_cmd
    assert test_cmd.startswith("pip install ") and "pytest" in test_cmd
    assert README.index("<!-- main-command -->") < README.index("<!-- test-command -->") < README.index("## ")


def test_ci_runs_the_readme_test_command():
    out = subprocess.run(["bash", "-c", 'awk "/<!-- test-command -->/{f=1} f && /^pip install/{print; exit}" README.md'],
                         cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert out == block_after("<!-- test-command -->")
    assert "test-command" in open(os.path.join(ROOT, ".ci", "run")).read()


def test_quickstart_runs_offline():
    code = block_after("<!-- quickstart -->")
    exec(compile(code, "README quickstart", "exec"), {})
