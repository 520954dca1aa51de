/* process: being written */
