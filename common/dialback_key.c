/* dialback_key: being written */
