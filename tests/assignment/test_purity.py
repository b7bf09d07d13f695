from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import experiments.assignment
allowed = {"experiments", "xxhash", "re2"}
loaded = {name.split(".")[0] for name in sys.modules}
third_party = sorted(
    name for name in loaded - allowed - set(sys.stdlib_module_names) if not name.startswith("_")
)
print(",".join(third_party))
"""


def test_importing_assignment_loads_only_stdlib_xxhash_and_re2() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""
