/* conn: being written */
