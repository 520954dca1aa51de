/* component: being written */
