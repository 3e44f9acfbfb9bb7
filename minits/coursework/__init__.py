"""Coursework: a student copy of minits, and an autograder built on the gradient checks.

The plain code marks what a student writes with one comment line at each end of a
task region (regions.py; the tasks are listed in catalog.py):

    # BEGIN TASK conv-backward
    ...the solution...
    # END TASK

``minits assignment make OUT`` (make.py) writes a student copy in which each chosen
region holds ``raise NotImplementedError("Task conv-backward: ...")``, with no
solution text anywhere. ``minits assignment grade SUBMISSION...`` (grade.py) runs
the hidden checks (hidden.py), task by task, each submission in its own process
(child.py), and writes one CSV row per submission and task. docs/coursework.md is
the guide for instructors and students.

Nothing in this package is part of a student copy.
"""
