"""Metadata is in setup.cfg.  This adds one build step: a wheel ships conf/ (the Hydra configs, kept at the
project's top level) inside the package as cream/conf, so a non-editable install finds them
(cream.paths.conf_dir)."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConf(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):  # an editable install reads conf/ in place
            src = Path(__file__).resolve().parent / "conf"
            shutil.copytree(src, Path(self.build_lib) / "cream" / "conf", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("site.yaml", "README.md"))


setup(cmdclass={"build_py": BuildPyWithConf})
