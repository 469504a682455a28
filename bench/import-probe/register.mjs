// `node --import <this file>` registers the probe's module hooks.
import { register } from "node:module"

register("./hooks.mjs", import.meta.url)
