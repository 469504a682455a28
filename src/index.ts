/**
 * @since 0.1.0
 */

/**
 * Every error the toolkit produces, and the `isRejection` guard.
 *
 * @since 0.1.0
 */
export * as Errors from "./Errors.js"
