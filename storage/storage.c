/* storage: being written */
