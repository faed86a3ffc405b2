// Log in and sign up.

import { h } from "./dom.js";
import { logIn, signUp } from "./api.js";
import { apiForm, field } from "./forms.js";

export function loginView(main, { go }) {
  const fields = [
    field({ name: "username", label: "Username", required: true, autocomplete: "username" }),
    field({ name: "password", label: "Password", type: "password", required: true, autocomplete: "current-password" }),
  ];
  const form = apiForm({
    label: "Log in",
    fields,
    submitLabel: "Log in",
    action: async ({ username, password }) => {
      await logIn(username.trim(), password);
      go("#/notes");
    },
  });
  main.append(
    h("h1", { tabindex: "-1" }, "Log in"),
    form,
    h("p", {}, "No account yet? ", h("a", { href: "#/signup" }, "Sign up")),
  );
}

export function signupView(main, { go }) {
  const fields = [
    field({ name: "username", label: "Username", required: true, autocomplete: "username",
      hint: "Letters, digits and @ . + - _ only." }),
    field({ name: "email", label: "Email (optional)", type: "email", autocomplete: "email" }),
    field({ name: "password", label: "Password", type: "password", required: true, autocomplete: "new-password",
      hint: "At least 8 characters, not a common password, not only digits." }),
  ];
  const form = apiForm({
    label: "Sign up",
    fields,
    submitLabel: "Sign up",
    action: async ({ username, email, password }) => {
      await signUp(username.trim(), email.trim(), password);
      go("#/notes");
    },
  });
  main.append(
    h("h1", { tabindex: "-1" }, "Sign up"),
    form,
    h("p", {}, "Have an account? ", h("a", { href: "#/login" }, "Log in")),
  );
}
