#!/usr/bin/env python3
"""A school in a Lernmanager database, made through the app's own functions (models.py), as its
admin pages would make it: classes, pupils with passwords, topics with steps, each class working
through its topics in order, and each pupil's progress in the current one.

Usage (in the app's directory, with the app's environment; the database is the app's own):
  python3 school_seed.py [--classes 12] [--pupils 25] [--topics 8] [--steps 6] [--seed 1] > school.json

Prints JSON: the pupils' usernames with their class, the class ids, the topic ids and the pupils'
password (one for all: the bench logs them in). Each password is hashed by the app's own
create_student (werkzeug scrypt), which is what makes a 300-pupil school take a minute.
"""

import argparse
import json
import random
import sys


def seed(models, classes, pupils, topics, steps, rng, password):
    topic_ids = []
    for number in range(1, topics + 1):
        task_id = models.create_task(
            name=f"Thema {number}", beschreibung=f"## Thema {number}\n\nWorum es geht, in zwei Sätzen.",
            lernziel=f"Die Schülerinnen und Schüler können Thema {number} erklären.",
            fach="Informatik", stufe="7", kategorie="pflicht", number=number)
        for step in range(1, steps + 1):
            models.create_subtask(task_id, f"### Schritt {step}\n\nLies den Text und bearbeite die Aufgabe {step}.",
                                  reihenfolge=step, estimated_minutes=15)
        topic_ids.append(task_id)
    school = {"password": password, "classes": [], "topics": topic_ids, "pupils": []}
    for number in range(classes):
        name = f"{7 + number // 4}{'abcd'[number % 4]}"
        klasse_id = models.create_klasse(name)
        school["classes"].append(klasse_id)
        for index in range(pupils):
            username = f"s{number:02d}{index:02d}"
            student_id = models.create_student(f"Nachname{index}", f"Vorname{index}", username, password)
            models.add_student_to_klasse(student_id, klasse_id)
            school["pupils"].append({"username": username, "klasse": klasse_id})
        models.set_topic_queue(klasse_id, topic_ids)
        # The class is at topic `current`: the ones before are done, steps of the current one partly.
        current = rng.randrange(topics)
        for task_id in topic_ids[:current + 1]:
            models.assign_task_to_klasse(klasse_id, task_id)
        progress(models, klasse_id, topic_ids[current], rng)
    return school


def progress(models, klasse_id, task_id, rng):
    """Each pupil of the class has done the first 0..all steps of the class's current topic."""
    with models.db_session() as conn:
        rows = conn.execute("SELECT id, student_id FROM student_task WHERE klasse_id = ? AND task_id = ? "
                            "AND abgeschlossen = 0", (klasse_id, task_id)).fetchall()
        subtasks = [r["id"] for r in conn.execute("SELECT id FROM subtask WHERE task_id = ? ORDER BY reihenfolge",
                                                  (task_id,)).fetchall()]
    for row in rows:
        for subtask_id in subtasks[:rng.randrange(len(subtasks) + 1)]:
            models.toggle_student_subtask(row["id"], subtask_id, True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--pupils", type=int, default=25, help="per class")
    parser.add_argument("--topics", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="per topic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--password", default="bench-Pupil-2026")
    args = parser.parse_args()
    sys.path.insert(0, ".")
    # models alone, not app: importing app starts its analytics thread, which competes for the database.
    import models
    models.init_db()
    school = seed(models, args.classes, args.pupils, args.topics, args.steps, random.Random(args.seed), args.password)
    json.dump(school, sys.stdout)
    print()


if __name__ == "__main__":
    main()
